"""The embedded model's training mix: judge rows in every check style."""

from __future__ import annotations

import random
import re

import pytest

from selfrl.data.arith import ArithGenerator, ArithSpec
from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.tiny.mix import JUDGE_STYLES, judge_rows


def _problems(n: int = 40):
    gen = ArithGenerator(ArithSpec(min_ops=2, max_ops=3), seed=4)
    return [gen.sample() for _ in range(n)]


@pytest.mark.parametrize("style", JUDGE_STYLES)
def test_judge_rows_verdict_parses_to_the_right_side(style):
    for i, p in enumerate(_problems()):
        serl, srr1 = judge_rows(p, random.Random(i), style)
        serl_text = serl["completion"][0]["content"]
        srr1_text = srr1["completion"][0]["content"]
        prompt = serl["prompt"][-1]["content"]
        right_first = prompt.index(p.solution) < prompt.index("# Output (2)")
        assert parse_serl(serl_text) == (1 if right_first else 2)
        srr1_prompt = srr1["prompt"][-1]["content"]
        right_a = srr1_prompt.index(p.solution) < srr1_prompt.index("Response B:")
        assert parse_srr1(srr1_text) == ("A" if right_a else "B")
        if style == "none":
            assert serl_text.count("\n") == 0


def test_check_names_the_first_differing_step_and_the_styles_differ_as_documented():
    p = next(q for q in _problems() if len(q.steps) >= 3)
    texts = {s: judge_rows(p, random.Random(5), s)[0]["completion"][0]["content"] for s in JUDGE_STYLES}
    step = int(texts["first_diff"].split(":", 1)[0].removeprefix("Step "))
    assert texts["walk"].count("same:") == step - 1
    assert texts["walk"].endswith(texts["first_diff"])
    # solve_step writes the whole correct step (sentence and equation) as its own line.
    assert texts["solve_step"].splitlines()[0] == f"Step {step}: {p.steps[step - 1]}"
    assert texts["walk_solve_step"].endswith(texts["solve_step"])
    with pytest.raises(ValueError, match="judge style"):
        judge_rows(p, random.Random(0), "vibes")


def test_facts_rows_and_mix_doctests():
    import doctest

    from selfrl.tiny import mix
    from selfrl.tiny.mix import MixWeights, build_mix, facts_row

    result = doctest.testmod(mix)
    assert result.attempted > 0 and result.failed == 0
    problems = _problems(5)
    row = facts_row(problems)
    lines = row["completion"][0]["content"].splitlines()
    assert len(lines) == sum(s.count(" = ") for p in problems for s in p.steps)
    for line in lines:  # every result is right
        expr, result_text = line.split(" = ")
        assert eval(expr) == int(result_text)  # noqa: S307 - digits and + - * only
    # Off by default: the shipped mix has no drill rows; with a share, they appear.
    spec = ArithSpec()
    default = build_mix(60, spec, set(), seed=0)
    drilled = build_mix(60, spec, set(), seed=0, weights=MixWeights(facts=0.5))
    def is_drill(r: dict) -> bool:
        return all(re.fullmatch(r"\d+ [-+*] \d+ = \d+", line)
                   for line in r["completion"][0]["content"].splitlines())

    assert not any(map(is_drill, default)) and any(map(is_drill, drilled))


def test_build_mix_weights():
    import doctest

    from selfrl.tiny import build as build_mod
    from selfrl.tiny.build import TinyBuildConfig, mix_weights
    from selfrl.tiny.mix import MixWeights

    assert doctest.testmod(build_mod).failed == 0
    assert mix_weights(TinyBuildConfig()) == MixWeights()  # the shipped build's mix, exactly
    with pytest.raises(ValueError, match="> 1"):
        mix_weights(TinyBuildConfig(solve_share=0.9, facts_share=0.2))


def test_direct_rows_answer_without_working_and_come_only_with_a_share():
    from selfrl.tiny.build import TinyBuildConfig, mix_weights, solving_modes
    from selfrl.tiny.mix import build_mix, direct_row, solve_row

    p = _problems(1)[0]
    direct, worked = direct_row(p), solve_row(p)
    assert direct["prompt"] == worked["prompt"]  # same question, same chat prompt
    text = direct["completion"][0]["content"]
    last_line = worked["completion"][0]["content"].splitlines()[-1]
    assert text == last_line == f"The answer is \\boxed{{{p.answer}}}."

    def n_direct(rows: list[dict]) -> int:
        return sum(r["completion"][0]["content"].startswith("The answer is") for r in rows)

    spec = ArithSpec()
    assert n_direct(build_mix(200, spec, set(), seed=0)) == 0
    w = mix_weights(TinyBuildConfig(solve_share=0.37, direct_share=0.45))
    assert w.solve_direct == 0.45 and abs(sum(vars(w).values()) - 1) < 1e-9
    assert 60 < n_direct(build_mix(200, spec, set(), seed=0, weights=w)) < 120
    modes = solving_modes([{"greedy": direct["completion"][0]["content"], "greedy_correct": True},
                           {"greedy": worked["completion"][0]["content"], "greedy_correct": False}])
    assert modes == {"worked_share": 0.5, "worked_accuracy": 0.0, "direct_accuracy": 1.0}
