"""Issue 25: ``selfrl data instruct`` (seeded splits, held-out topics and combinations, constraints as
data) and bad rows refused when a file is read, by ``selfrl eval`` and by a training run alike."""

from __future__ import annotations

import json

import pytest

from selfrl.cli import main
from selfrl.config.schema import RunConfig
from selfrl.data.constraints import parse_constraints
from selfrl.data.instruct import InstructSpec, make_instruct, write_instruct
from selfrl.data.io import DataError, read_jsonl, write_jsonl
from selfrl.eval.benchmarks import load_benchmark
from selfrl.recipes import build_trainer

SMALL = InstructSpec(n_train=300, n_validation=60, n_test=90)


@pytest.fixture(scope="module")
def splits():
    return make_instruct(SMALL, seed=3)


def test_splits_do_not_overlap_by_question_nor_topic(splits):
    questions = {s: {r["question"] for r in rows} for s, rows in splits.rows.items()}
    topics = {s: {r["topic"] for r in rows} for s, rows in splits.rows.items()}
    assert {s: len(rows) for s, rows in splits.rows.items()} == {"train": 300, "validation": 60, "test": 90}
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not questions[a] & questions[b] and not topics[a] & topics[b]
    for s, rows in splits.rows.items():
        assert len(questions[s]) == len(rows)  # no prompt twice within a split


def test_held_out_combinations_never_reach_train(splits):
    train = {r["combination"] for r in splits.rows["train"]}
    held = splits.info["held_out_combinations"]
    assert held["test"] and held["validation"] and not set(held["test"]) & set(held["validation"])
    for split in ("test", "validation"):
        rows = splits.rows[split]
        held_rows = [r for r in rows if r["group"] == "held_out_combination"]
        assert held_rows and {r["combination"] for r in held_rows} <= set(held[split])
        assert not {r["combination"] for r in held_rows} & train
        seen = {r["combination"] for r in rows if r["group"] == "seen_combination"}
        assert seen <= set(splits.info["seen_combinations"])
    assert {r["group"] for r in splits.rows["train"]} == {"single", "seen_combination"}


def test_rows_carry_their_constraints_as_data(splits):
    for row in splits.rows["test"]:
        constraints = parse_constraints(row["constraints"])  # every written row loads
        assert row["combination"] == "+".join(sorted(c.kind for c in constraints))
        assert (len(constraints) == 1) == (row["group"] == "single")
        for c in constraints:  # the prompt asks for exactly what the data says
            assert c.instruction() in row["question"]


def test_seeded_and_restricted_to_the_kinds_asked_for():
    a, b = make_instruct(SMALL, seed=1), make_instruct(SMALL, seed=1)
    assert a.rows == b.rows and a.rows != make_instruct(SMALL, seed=2).rows
    spec = InstructSpec(n_train=50, n_validation=10, n_test=10, kinds=("lowercase", "max_words", "no_commas"),
                        max_constraints=3, held_out_share=0.0)
    rows = make_instruct(spec).rows["train"]
    kinds = {c["kind"] for r in rows for c in r["constraints"]}
    assert kinds == {"lowercase", "max_words", "no_commas"}
    assert max(len(r["constraints"]) for r in rows) == 3


def test_impossible_specs_are_refused():
    with pytest.raises(ValueError, match="no two of the kinds bullets, json_keys can hold together"):
        make_instruct(InstructSpec(kinds=("bullets", "json_keys")))
    spec = InstructSpec(n_train=5, n_validation=2, n_test=2, kinds=("bullets", "json_keys"), single_share=1.0)
    only_single = make_instruct(spec)
    assert all(r["group"] == "single" for rows in only_single.rows.values() for r in rows)
    with pytest.raises(KeyError, match="did you mean 'lowercase'"):
        InstructSpec(kinds=("lowercse",))
    with pytest.raises(ValueError, match="held_out_rows must be in"):
        InstructSpec(held_out_rows=1.5)


def test_cli_writes_the_files(tmp_path, capsys):
    out = tmp_path / "instruct"
    assert main(["data", "instruct", "--output", str(out), "--n-train", "40", "--n-validation", "10",
                 "--n-test", "10", "--seed", "5"]) == 0
    assert len(read_jsonl(out / "train.jsonl")) == 40
    info = json.loads((out / "info.json").read_text())
    assert info["seed"] == 5 and info["rows"] == {"train": 40, "validation": 10, "test": 10}
    assert main(["data", "instruct", "--output", str(out), "--kinds", "lowercase,bulets"]) == 2
    assert "unknown constraint kind 'bulets' (did you mean 'bullets'?)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# bad rows: caught when the file is read


@pytest.fixture
def bad_files(tmp_path):
    """A file per bad row: an unknown kind, a malformed parameter, constraints that cannot all hold."""
    good = {"question": "Describe fog.", "constraints": [{"kind": "lowercase"}]}
    files = {}
    cases = {"kind": [{"kind": "shouting"}], "param": [{"kind": "bullets", "params": {"n": "three"}}],
             "unsat": [{"kind": "max_words", "params": {"n": 5}}, {"kind": "bullets", "params": {"n": 6}}]}
    for name, constraints in cases.items():
        files[name] = tmp_path / f"{name}.jsonl"
        write_jsonl(files[name], [good, {"question": "Describe rain.", "constraints": constraints}])
    return files


EXPECTED = {"kind": "row 2: constraints[0]: unknown constraint kind 'shouting'",
            "param": "row 2: constraints[0] (bullets): parameter 'n' must be an integer from 1 to 20, got "
                     "'three'",
            "unsat": "row 2: constraints[0] (max_words) and constraints[1] (bullets) cannot both hold"}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_rows_fail_the_load(bad_files, case):
    with pytest.raises(DataError) as e:
        load_benchmark("instruct", bad_files[case])
    assert str(e.value).startswith(f"{bad_files[case]}: {EXPECTED[case]}")


def test_bad_rows_stop_selfrl_eval_before_any_model_work(bad_files, capsys):
    code = main(["eval", "--model", "tiny-arith", "--benchmark", "instruct", "--data",
                 str(bad_files["unsat"]), "--n", "0"])
    err = capsys.readouterr().err
    assert code == 2 and EXPECTED["unsat"] in err and len(err.strip().splitlines()) == 1


def test_bad_rows_stop_a_training_run_at_load(make_config, bad_files):
    cfg = RunConfig.model_validate(make_config("bad", extra={
        "data": {"benchmark": "instruct", "train": str(bad_files["param"]), "eval": None},
        "rewards": [{"name": "constraints"}]}))
    with pytest.raises(DataError, match="parameter 'n' must be an integer"):
        build_trainer(cfg)


def test_write_instruct_returns_the_counts(tmp_path):
    counts = write_instruct(tmp_path, InstructSpec(n_train=12, n_validation=4, n_test=6))
    assert counts == {"train.jsonl": 12, "validation.jsonl": 4, "test.jsonl": 6}
    rows = load_benchmark("instruct", tmp_path / "test.jsonl")
    assert all(r["constraints"] and r["group"] and "answer" not in r for r in rows)  # no answer key
