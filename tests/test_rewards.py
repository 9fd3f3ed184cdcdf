"""CPU unit tests of selfrl.rewards: each reward on hand-made cases, the checks in
compute_reward, the registry, and the HTTP reward against a real server on 127.0.0.1."""

from __future__ import annotations

import doctest
import importlib
import json
import math
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfrl.rewards import (
    THINK_ANSWER,
    AccuracyReward,
    FormatReward,
    HttpReward,
    LengthPenalty,
    PythonFileReward,
    RewardBatch,
    RewardError,
    RewardResult,
    WeightedSum,
    available_rewards,
    build_reward,
    compute_reward,
    register_reward,
    reward_name,
)
from selfrl.rewards import registry as registry_module

MODULES = ["base", "registry", "accuracy", "formatting", "length", "python_file", "remote", "weighted"]


def make_batch(completions, rows=None, group_size=None, prompt="What is 2+2?"):
    n = len(completions)
    rows = rows if rows is not None else [{"answer": "4"}] * n
    return RewardBatch([prompt] * n, list(completions), rows, group_size or n or 1)


class Constant:
    """A picklable toy reward that gives every completion the same score."""

    def __init__(self, value, name="constant", metrics=None):
        self.value, self.name, self.metrics = value, name, metrics or {}

    def __call__(self, batch):
        return RewardResult([self.value] * len(batch), dict(self.metrics))


class Returns:
    """A toy reward that returns a fixed object, whatever the batch."""

    name = "returns"

    def __init__(self, out):
        self.out = out

    def __call__(self, batch):
        return self.out


# --- docs, imports ------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(f"selfrl.rewards.{module}")
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0


def test_import_is_light():
    code = "import sys, selfrl.rewards; assert 'math_verify' not in sys.modules, 'math_verify imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_names():
    shipped = {"accuracy", "format", "length_penalty", "python", "http", "weighted_sum"}
    assert shipped <= set(available_rewards())


# --- RewardBatch, compute_reward -----------------------------------------------------


def test_batch_checks_lengths_and_groups():
    with pytest.raises(RewardError, match="one prompt and one row per completion"):
        RewardBatch(["p"], ["a", "b"], [{}, {}], 1)
    with pytest.raises(RewardError, match="group_size 3 does not divide 4"):
        RewardBatch(["p"] * 4, ["a"] * 4, [{}] * 4, 3)
    batch = RewardBatch(["p"] * 6, list("abcdef"), [{}] * 6, 3)
    assert [list(g) for g in batch.groups()] == [[0, 1, 2], [3, 4, 5]]


def test_compute_reward_accepts_lists_tuples_bools_and_results():
    batch = make_batch(["a", "b"])
    assert compute_reward(Returns([1, 0.5]), batch) == RewardResult([1.0, 0.5], {})
    assert compute_reward(Returns((True, False)), batch).scores == [1.0, 0.0]
    out = compute_reward(Returns(RewardResult([0, 1], {"m": 2})), batch)
    assert out == RewardResult([0.0, 1.0], {"m": 2.0})
    assert all(type(s) is float for s in out.scores)


@pytest.mark.parametrize(
    "out, message",
    [
        ([1.0], "reward 'returns' returned 1 scores for 2 completions"),
        ([1.0, 2.0, 3.0], "reward 'returns' returned 3 scores for 2 completions"),
        ([1.0, float("nan")], "reward 'returns': score 1 is nan, not finite"),
        ([float("inf"), 0.0], "reward 'returns': score 0 is inf, not finite"),
        ([1.0, "1.0"], "reward 'returns': score 1 is '1.0', not a number"),
        ([None, 1.0], "reward 'returns': score 0 is None, not a number"),
        (None, "reward 'returns' returned NoneType, not a list of scores"),
        ("10", "reward 'returns' returned str, not a list of scores"),
        ({"scores": [1, 2]}, "reward 'returns' returned dict, not a list of scores"),
        (RewardResult([1.0, 1.0], {"m": "x"}), "reward 'returns': metric 'm' is 'x', not a number"),
        (RewardResult([1.0, None]), "reward 'returns': score 1 is None"),
    ],
)
def test_compute_reward_rejects_bad_output_naming_the_reward(out, message):
    with pytest.raises(RewardError) as info:
        compute_reward(Returns(out), make_batch(["a", "b"]))
    assert message in str(info.value)


def test_compute_reward_names_a_reward_that_raises():
    def broken(batch):
        raise KeyError("answer")

    with pytest.raises(RewardError, match="reward 'broken' raised KeyError") as info:
        compute_reward(broken, make_batch(["a"]))
    assert isinstance(info.value.__cause__, KeyError)


def test_reward_name_fallbacks():
    def my_fn(batch):
        return []

    class NoName:
        def __call__(self, batch):
            return []

    assert reward_name(my_fn) == "my_fn"
    assert reward_name(NoName()) == "NoName"
    assert reward_name(Constant(1.0, name="c")) == "c"
    assert reward_name(FormatReward(name="boxed")) == "boxed"


# --- accuracy ------------------------------------------------------------------------


def test_accuracy_scores_and_metrics():
    completions = ["so \\boxed{4}", "The answer is 4.", "I get \\boxed{5}", "no idea", "4.0"]
    result = AccuracyReward()(make_batch(completions))
    assert result.scores == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert result.metrics == {"accuracy": 0.6, "parsed_fraction": 0.8, "unparsable_gold": 0.0}


def test_accuracy_nested_boxed():
    rows = [{"answer": "\\frac{\\sqrt{2}}{2}"}] * 3
    completions = [
        "so \\boxed{\\frac{1}{\\sqrt{2}}}",  # nested braces, math-verify equivalence
        "first \\boxed{1} then finally \\boxed{\\frac{\\sqrt{2}}{2}}",  # the last box counts
        "\\boxed{\\frac{1}{2}}",
    ]
    assert AccuracyReward()(make_batch(completions, rows)).scores == [1.0, 1.0, 0.0]
    assert AccuracyReward()(make_batch(["\\boxed{\\boxed{3}}"], [{"answer": "3"}])).scores == [1.0]


def test_unparsable_gold_is_never_rewarded_and_is_counted():
    completions = ["\\boxed{???}", "\\boxed{???}", "\\boxed{4}", "\\boxed{}", "\\boxed{4}"]
    rows = [{"answer": "???"}, {"answer": "???"}, {"answer": None}, {"answer": ""}, {"answer": 4}]
    result = AccuracyReward()(RewardBatch(["q"] * 5, completions, rows, 1))
    assert result.scores == [0.0, 0.0, 0.0, 0.0, 1.0]  # even a verbatim copy of "???" gets 0
    assert result.metrics["unparsable_gold"] == 4.0
    assert result.metrics["accuracy"] == 0.2


def test_accuracy_answer_field_and_missing_field():
    batch = make_batch(["\\boxed{7}"], [{"solution": "7", "answer": "8"}])
    assert AccuracyReward(answer_field="solution")(batch).scores == [1.0]
    with pytest.raises(RewardError, match="reward 'accuracy': row has no field 'gold'"):
        compute_reward(AccuracyReward(answer_field="gold"), batch)


# --- format --------------------------------------------------------------------------


def test_format_default_needs_a_final_complete_box():
    completions = [
        "so \\boxed{4}",
        "\\boxed{\\frac{1}{\\sqrt{2}}} done",
        "\\fbox{4}",
        "\\boxed{}",
        "\\boxed{4",
        "the answer is 4",
    ]
    result = FormatReward()(make_batch(completions))
    assert result.scores == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert result.metrics == {"format_fraction": 0.5}


def test_format_pattern_search_and_fullmatch():
    completions = [
        "<think>\nstep 1\nstep 2\n</think>\n<answer>4</answer>\n",
        "preamble <think>x</think><answer>4</answer>",
        "<think>x</think>",
    ]
    batch = make_batch(completions)
    assert FormatReward(pattern=THINK_ANSWER)(batch).scores == [1.0, 1.0, 0.0]
    assert FormatReward(pattern=THINK_ANSWER, fullmatch=True)(batch).scores == [1.0, 0.0, 0.0]


def test_format_bad_options():
    with pytest.raises(RewardError, match="bad pattern"):
        FormatReward(pattern="(unclosed")
    with pytest.raises(RewardError, match="fullmatch needs a pattern"):
        FormatReward(fullmatch=True)


# --- length penalty ------------------------------------------------------------------


def test_length_penalty_ramp_in_chars():
    lengths = [0, 80, 81, 90, 100, 101, 500]
    batch = make_batch(["x" * n for n in lengths])
    result = LengthPenalty(max_len=100, buffer=20)(batch)
    assert result.scores == pytest.approx([0.0, 0.0, -0.05, -0.5, -1.0, -1.0, -1.0])
    assert result.metrics["mean_length"] == pytest.approx(sum(lengths) / len(lengths))
    assert result.metrics["penalised_fraction"] == pytest.approx(5 / 7)
    assert result.metrics["overlong_fraction"] == pytest.approx(2 / 7)


def test_length_penalty_words_and_step():
    batch = make_batch(["one two three", "one  two\nthree four five", "a " * 10])
    assert LengthPenalty(max_len=5, buffer=2, unit="words")(batch).scores == pytest.approx([0.0, -1.0, -1.0])
    assert LengthPenalty(max_len=4, buffer=2, unit="words")(batch).scores == pytest.approx([-0.5, -1.0, -1.0])
    assert LengthPenalty(max_len=13)(batch).scores == [0.0, -1.0, -1.0]  # buffer 0: a step


@pytest.mark.parametrize(
    "kwargs", [{"max_len": 0}, {"max_len": 10, "buffer": 11}, {"max_len": 10, "unit": "tok"}]
)
def test_length_penalty_bad_options(kwargs):
    with pytest.raises(RewardError):
        LengthPenalty(**kwargs)


# --- python file ---------------------------------------------------------------------

USER_FILE = '''
from dataclasses import dataclass

from selfrl.rewards import RewardResult


@dataclass
class Cfg:  # dataclasses need the module in sys.modules
    bonus: float = 0.5


def has_boxed(batch):
    return [float("\\\\boxed" in c) for c in batch.completions]


def first_in_group(batch):
    scores = [0.0] * len(batch.completions)
    for start in range(0, len(scores), batch.group_size):
        scores[start] = Cfg().bonus
    return RewardResult(scores, {"groups": len(scores) / batch.group_size})


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE)
    return path


def test_python_file_reward_calls_the_function_with_the_batch(user_file):
    batch = RewardBatch(["p"] * 4, ["\\boxed{1}", "1", "\\boxed{2}", "x"], [{}] * 4, 2)
    reward = PythonFileReward(f"{user_file}:has_boxed")
    assert reward.name == "has_boxed"
    assert compute_reward(reward, batch).scores == [1.0, 0.0, 1.0, 0.0]
    grouped = build_reward("python", spec=f"{user_file}:first_in_group", name="first")
    assert compute_reward(grouped, batch) == RewardResult([0.5, 0.0, 0.5, 0.0], {"groups": 2.0})


def test_python_file_reward_pickles_by_path(user_file):
    reward = pickle.loads(pickle.dumps(PythonFileReward(f"{user_file}:has_boxed", name="boxed")))
    assert reward.name == "boxed"
    assert reward(make_batch(["\\boxed{4}"])) == [1.0]


def test_python_file_reward_relative_path(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent)
    reward = PythonFileReward("my_rewards.py:has_boxed")
    assert reward.spec == f"{user_file.resolve()}:has_boxed"


def test_python_file_reward_errors(user_file, tmp_path):
    with pytest.raises(RewardError, match="no such file"):
        PythonFileReward(f"{tmp_path / 'missing.py'}:f")
    with pytest.raises(RewardError, match=r"has no function 'nope'; callables there: .*has_boxed"):
        PythonFileReward(f"{user_file}:nope")
    with pytest.raises(RewardError, match="NOT_A_FUNCTION is a int, not callable"):
        PythonFileReward(f"{user_file}:NOT_A_FUNCTION")
    with pytest.raises(RewardError, match="expected 'path/to/file.py:function'"):
        PythonFileReward(str(user_file))
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(RewardError, match="importing .*broken.py raised ModuleNotFoundError"):
        PythonFileReward(f"{broken}:f")


# --- http ----------------------------------------------------------------------------


class ScoreHandler(BaseHTTPRequestHandler):
    """Routes: /healthy scores by length, /flaky fails once with 503, the rest misbehave."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server = self.server
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append((self.path, payload, dict(self.headers)))
        n = len(payload["completions"])
        good = json.dumps({"scores": [float(len(c)) for c in payload["completions"]], "metrics": {"n": n}})
        if self.path == "/healthy":
            self._send(200, good)
        elif self.path == "/flaky":
            server.flaky_calls += 1
            if server.flaky_calls == 1:
                self._send(503, "busy")
            else:
                self._send(200, good)
        elif self.path == "/always_503":
            self._send(503, "busy")
        elif self.path == "/not_json":
            self._send(200, "<html>hello</html>", "text/html")
        elif self.path == "/no_scores":
            self._send(200, json.dumps({"rewards": [1.0] * n}))
        elif self.path == "/wrong_length":
            self._send(200, json.dumps({"scores": [1.0] * (n + 1)}))
        elif self.path == "/bad_value":
            self._send(200, json.dumps({"scores": ["high"] * n}))
        elif self.path == "/slow":
            server.release.wait(10.0)  # the client gives up first; answer nothing afterwards
        else:
            self._send(404, "no such route")


@pytest.fixture
def server(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ScoreHandler)
    srv.requests, srv.flaky_calls, srv.release = [], 0, threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join()


def http_reward(srv, route, **kwargs):
    options = {"timeout": 5.0, "retries": 2, "backoff": 0.01} | kwargs
    return HttpReward(srv.url + route, **options)


def test_http_healthy(server):
    batch = RewardBatch(["p", "p"], ["ab", "abcd"], [{"answer": "4", "id": 1}] * 2, 2)
    reward = http_reward(server, "/healthy", headers={"X-Token": "t"})
    assert compute_reward(reward, batch) == RewardResult([2.0, 4.0], {"n": 2.0})
    ((path, payload, headers),) = server.requests
    assert payload == {"prompts": ["p", "p"], "completions": ["ab", "abcd"],
                       "rows": [{"answer": "4", "id": 1}] * 2, "group_size": 2}
    assert headers["X-Token"] == "t" and headers["Content-Type"] == "application/json"


def test_http_flaky_endpoint_is_retried(server):
    assert http_reward(server, "/flaky")(make_batch(["abc"])).scores == [3.0]
    assert server.flaky_calls == 2


def test_http_server_errors_retried_then_reported(server):
    with pytest.raises(RewardError, match=r"reward 'http': .*/always_503 failed after 3 attempts .*HTTP 503"):
        http_reward(server, "/always_503")(make_batch(["a"]))
    assert len(server.requests) == 3


def test_http_client_error_is_not_retried(server):
    with pytest.raises(RewardError, match="answered HTTP 404"):
        http_reward(server, "/missing")(make_batch(["a"]))
    assert len(server.requests) == 1


def test_http_endpoint_down():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reward = HttpReward(f"http://127.0.0.1:{port}/score", timeout=2.0, retries=1, backoff=0.01, name="judge")
    expected = r"reward 'judge': http://127\.0\.0\.1:\d+/score failed after 2 attempts"
    with pytest.raises(RewardError, match=expected):
        compute_reward(reward, make_batch(["a"]))


def test_http_timeout(server):
    with pytest.raises(RewardError, match="failed after 1 attempt .*(timed out|Timeout)"):
        http_reward(server, "/slow", timeout=0.2, retries=0)(make_batch(["a"]))


@pytest.mark.parametrize(
    "route, message",
    [
        ("/not_json", "did not answer JSON"),
        ("/no_scores", "answered without a 'scores' list"),
        ("/wrong_length", "returned 3 scores for 2 completions"),
        ("/bad_value", "score 0 is 'high', not a number"),
    ],
)
def test_http_nonsense_answers(server, route, message):
    with pytest.raises(RewardError, match=message):
        compute_reward(http_reward(server, route), make_batch(["a", "b"]))
    assert len(server.requests) == 1  # a nonsense answer is not retried


def test_http_bad_options():
    with pytest.raises(RewardError, match="http:// or https://"):
        HttpReward("ftp://127.0.0.1/score")
    with pytest.raises(RewardError, match="retries >= 0"):
        HttpReward("http://127.0.0.1:1/score", retries=-1)


# --- weighted sum --------------------------------------------------------------------


def test_weighted_sum_numbers_and_metrics():
    completions = ["\\boxed{4}", "\\boxed{5}", "4", "x" * 30]
    total = WeightedSum([
        (AccuracyReward(), 1.0),
        (FormatReward(), 0.5),
        (LengthPenalty(max_len=20, buffer=10), 2.0),
    ])
    result = compute_reward(total, make_batch(completions))
    acc, fmt, length = [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, -1]
    expected = [a + 0.5 * f + 2.0 * n for a, f, n in zip(acc, fmt, length, strict=True)]
    assert result.scores == pytest.approx(expected)  # [1.5, 0.5, 1.0, -2.0]
    m = result.metrics
    assert m["reward/accuracy"] == 0.5 and m["reward/format"] == 0.5 and m["reward/length_penalty"] == -0.25
    assert m["accuracy/accuracy"] == 0.5 and m["accuracy/parsed_fraction"] == 0.75
    assert m["format/format_fraction"] == 0.5 and m["length_penalty/overlong_fraction"] == 0.25


def test_weighted_sum_checks_components():
    with pytest.raises(RewardError, match="at least one"):
        WeightedSum([])
    with pytest.raises(RewardError, match=r"components share names \['format'\]"):
        WeightedSum([(FormatReward(), 1.0), (FormatReward(pattern="x"), 1.0)])
    WeightedSum([(FormatReward(), 1.0), (FormatReward(pattern="x", name="x_format"), 1.0)])
    with pytest.raises(RewardError, match="weight of 'format' is nan"):
        WeightedSum([(FormatReward(), float("nan"))])
    with pytest.raises(RewardError, match="expected \\(reward, weight\\) pairs"):
        WeightedSum([(FormatReward(), "1")])
    bad = WeightedSum([(Constant(1.0), 1.0), (Returns([1.0, 2.0]), 1.0)], name="total")
    with pytest.raises(RewardError, match="reward 'returns' returned 2 scores for 1 completions"):
        compute_reward(bad, make_batch(["a"]))


def test_weighted_sum_from_config():
    total = build_reward("weighted_sum", components=[
        {"reward": "accuracy"},
        {"reward": "format", "weight": 0.5, "pattern": THINK_ANSWER, "name": "tags"},
        {"reward": "length_penalty", "max_len": 10},
        ("format", 2.0),
        (Constant(2.0), 0.25),
    ])
    batch = make_batch(["<think>x</think><answer>\\boxed{4}</answer>", "nope"])
    result = compute_reward(total, batch)
    # accuracy + 0.5 tags - 1 length (41 chars > 10) + 2 boxed + 0.25 * 2
    assert result.scores == pytest.approx([1.0 + 0.5 - 1.0 + 2.0 + 0.5, 0.5])
    assert result.metrics["reward/tags"] == 0.5 and result.metrics["reward/constant"] == 2.0
    assert result.metrics["reward/length_penalty"] == -0.5 and result.metrics["reward/format"] == 0.5
    with pytest.raises(RewardError, match="has no 'reward' key"):
        build_reward("weighted_sum", components=[{"weight": 1.0}])


def test_shipped_rewards_pickle():
    rewards = [
        AccuracyReward(answer_field="solution"),
        FormatReward(pattern=THINK_ANSWER, fullmatch=True),
        LengthPenalty(max_len=100, buffer=10, unit="words"),
        HttpReward("http://127.0.0.1:1/score", retries=0),
        WeightedSum([(AccuracyReward(), 1.0), (FormatReward(), 0.5)]),
    ]
    batch = make_batch(["<think>a</think><answer>\\boxed{4}</answer>"], [{"answer": "4", "solution": "4"}])
    for reward in rewards[:3] + rewards[4:]:
        copy = pickle.loads(pickle.dumps(reward))
        assert copy(batch) == reward(batch)
    assert pickle.loads(pickle.dumps(rewards[3])).url == rewards[3].url


# --- registry ------------------------------------------------------------------------


@pytest.fixture
def scratch_registry(monkeypatch):
    registry = registry_module.REWARDS
    monkeypatch.setattr(registry, "_table", dict(zip(registry.names(), map(registry.get, registry.names()))))
    monkeypatch.setattr(registry, "_traits", dict.fromkeys(registry.names()))


def test_unknown_reward_lists_valid_names_and_close_matches():
    with pytest.raises(RewardError) as info:
        build_reward("acuracy")
    message = str(info.value)
    assert "unknown reward 'acuracy' (did you mean 'accuracy'?)" in message
    assert all(name in message for name in available_rewards())
    with pytest.raises(RewardError, match="unknown reward 'zzz'; valid: accuracy"):
        build_reward("zzz")


def test_bad_reward_options_are_reported():
    expected = r"bad options for reward 'format'.*'patern' \(did you mean 'pattern'\?\)"
    with pytest.raises(RewardError, match=expected):
        build_reward("format", patern="x")
    with pytest.raises(RewardError, match="bad options for reward 'length_penalty'.*max_len"):
        build_reward("length_penalty")


def test_register_and_duplicate(scratch_registry):
    @register_reward("constant")
    class Three(Constant):
        def __init__(self, name="three"):
            super().__init__(3.0, name=name)

    assert build_reward("constant")(make_batch(["a"])).scores == [3.0]
    with pytest.raises(RewardError, match="reward 'constant' is already registered"):
        register_reward("constant")(Constant)
    with pytest.raises(RewardError, match="reward 'accuracy' is already registered"):
        register_reward("accuracy")(Constant)


def test_scores_are_finite_floats_for_every_shipped_reward():
    batch = make_batch(["\\boxed{4}", ""])
    for reward in [AccuracyReward(), FormatReward(), LengthPenalty(max_len=5, buffer=2)]:
        assert all(math.isfinite(s) for s in compute_reward(reward, batch).scores)


def test_user_file_example_matches_docs(tmp_path):
    # The docstring's example function, verbatim, works as a python reward.
    path = tmp_path / "docs_example.py"
    path.write_text(textwrap.dedent('''
        def short_and_boxed(batch):
            return [float("\\\\boxed" in c and len(c) < 400) for c in batch.completions]
    '''))
    reward = build_reward("python", spec=f"{path}:short_and_boxed")
    batch = make_batch(["\\boxed{4}", "4", "\\boxed{4}" + "x" * 400])
    assert compute_reward(reward, batch).scores == [1.0, 0.0, 0.0]
