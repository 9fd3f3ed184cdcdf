"""Review issue 19: inputs checked before work starts, and outputs that only appear when done.

- ``selfrl rm train`` reads every input (train and eval rows, their fields) before training and
  moves its model into place only when complete, so a pipeline re-run never skips a broken stage;
- a data file that is not UTF-8, or a Parquet file that is not Parquet, is a one-line DataError;
- ``recipe_args`` is checked when the config loads, with the loader's "did you mean" messages;
- dataset names with a slash and local dataset folders load with ``split`` / ``subset``;
- a bare model name that is nowhere fails at once when the hub is out of reach.

No test touches the Hugging Face hub: datasets are local folders, the hub is offline or stubbed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from selfrl.cli import main
from selfrl.config import ConfigError, load_config
from selfrl.config.schema import RunConfig
from selfrl.data.io import DataError, read_jsonl, read_rows, write_jsonl
from selfrl.models import ModelNotFoundError, resolve_model_path

# --------------------------------------------------------------------------- 1. rm train


def _rm_cfg_dict(tiny_model, arith_dir, out, eval_path=None) -> dict:
    return {"model": {"path": str(tiny_model), "device": "cpu"},
            "data": {"train": str(arith_dir / "preference_train.jsonl"),
                     "eval": str(eval_path or arith_dir / "preference_test.jsonl")},
            "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3}, "output_dir": str(out),
            "report_to": []}


@pytest.fixture
def no_training(monkeypatch):
    """Make any start of TRL's reward training fail loudly."""
    from trl import RewardTrainer

    def train(self, *args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(RewardTrainer, "train", train)


def test_rm_train_checks_the_eval_file_before_training(tiny_model, arith_dir, tmp_path, no_training):
    from selfrl.rlhf.rm import RmConfig, run_rm

    missing = tmp_path / "nope.jsonl"
    cfg = RmConfig.model_validate(_rm_cfg_dict(tiny_model, arith_dir, tmp_path / "rm", missing))
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        run_rm(cfg)
    assert not (tmp_path / "rm" / "model").exists()


def test_rm_train_checks_the_eval_fields_before_training(tiny_model, arith_dir, tmp_path, no_training):
    from selfrl.rlhf.rm import RmConfig, run_rm

    held_out = tmp_path / "held_out.jsonl"
    write_jsonl(held_out, [{"question": "q", "response_j": "a"}])
    cfg = RmConfig.model_validate(_rm_cfg_dict(tiny_model, arith_dir, tmp_path / "rm", held_out))
    with pytest.raises(DataError, match=r"held_out\.jsonl:1: missing field 'response_k'"):
        run_rm(cfg)


def test_rm_config_with_an_unknown_template_field_is_a_config_error(tmp_path):
    from selfrl.rlhf.rm import RmConfig

    with pytest.raises(ConfigError, match="template"):
        load_config(RmConfig, None, ["data.train=x.jsonl", "data.template='Q: {qestion} A: {response}'"])


def test_a_failed_rm_stage_leaves_no_output_so_a_pipeline_rerun_runs_it(tiny_model, arith_dir, tmp_path,
                                                                        monkeypatch):
    import selfrl.rlhf.rm as rm
    from selfrl.pipeline import run_pipeline

    out = tmp_path / "out"
    (tmp_path / "rm.yaml").write_text(yaml.safe_dump(_rm_cfg_dict(tiny_model, arith_dir, out / "rm")))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"stages": [
        {"name": "rm", "kind": "rm", "config": "rm.yaml", "output": str(out / "rm" / "model")}]}))

    def broken(*args, **kwargs):
        raise RuntimeError("killed while measuring")

    monkeypatch.setattr(rm, "pair_accuracy", broken)
    with pytest.raises(RuntimeError, match="killed while measuring"):
        run_pipeline(tmp_path / "p.yaml", log=lambda _: None)
    assert not (out / "rm" / "model").exists()
    assert not any(p.name.endswith(".partial") for p in (out / "rm").iterdir())
    monkeypatch.undo()
    assert run_pipeline(tmp_path / "p.yaml", log=lambda _: None) == ["rm"]  # not skipped as done
    assert (out / "rm" / "model" / "config.json").is_file()
    assert "eval" in json.loads((out / "rm" / "rm_report.json").read_text())


def test_a_failed_merge_stage_leaves_no_output(tmp_path, monkeypatch):
    import selfrl.rlhf.merge as merge
    from selfrl.pipeline import run_pipeline

    def half_written(adapter, output):
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(merge, "merge_adapter", half_written)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"stages": [
        {"name": "m", "kind": "merge", "adapter": "a", "output": str(tmp_path / "merged")}]}))
    with pytest.raises(RuntimeError, match="disk full"):
        run_pipeline(tmp_path / "p.yaml", log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


# --------------------------------------------------------------------------- 2. not UTF-8


def _latin1_file(path):
    path.write_bytes(b'{"question": "q", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n')
    return path


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.txt"])
def test_a_non_utf8_data_file_is_a_data_error_naming_file_and_line(tmp_path, name):
    path = _latin1_file(tmp_path / name)
    for read in (read_jsonl, read_rows):
        with pytest.raises(DataError) as e:
            read(path)
        assert f"{path}:2:" in str(e.value) and "UTF-8" in str(e.value)
        assert "\n" not in str(e.value)


def test_eval_cli_reports_a_non_utf8_file_in_one_line(tiny_model, tmp_path, capsys):
    path = _latin1_file(tmp_path / "bad.jsonl")
    assert main(["eval", "--model", str(tiny_model), "--data", str(path), "--n", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}:2:" in err and len(err.splitlines()) == 1


def test_a_file_that_is_not_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all\xff")
    with pytest.raises(DataError, match=r"x\.parquet: not a readable Parquet file"):
        read_rows(path)


# --------------------------------------------------------------------------- 3. recipe_args


@pytest.mark.parametrize("recipe, override, expected", [
    ("rlvr", "recipe_args.n_fewshot=4", "recipe_args.n_fewshot: unknown key; this section takes no keys"),
    ("serl", "recipe_args.n_fewshott=4", "recipe_args.n_fewshott: unknown key; did you mean 'n_fewshot'?"),
    ("serl_judge", "recipe_args.judge_sample=2",
     "recipe_args.judge_sample: unknown key; did you mean 'judge_samples'"),
    ("srr1_elo", "recipe_args.judge_samples=many", "recipe_args.judge_samples: wrong type: expected int"),
])
def test_recipe_args_are_checked_when_the_config_loads(recipe, override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, None, [f"recipe={recipe}", override])
    assert expected in str(e.value)
    assert f"[from override {override!r}]" in str(e.value)


def test_valid_recipe_args_load():
    cfg = load_config(RunConfig, None, ["recipe=srr1_elo", "recipe_args.judge_samples=3"])
    assert cfg.recipe_args == {"judge_samples": 3}


def test_an_unknown_recipe_is_a_config_error():
    with pytest.raises(ConfigError, match="recipe: unknown recipe 'serll'; did you mean 'serl'"):
        load_config(RunConfig, None, ["recipe=serll"])


def test_config_show_rejects_a_misspelt_recipe_arg(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"recipe": "serl_judge", "recipe_args": {"judge_sampels": 2}}))
    assert main(["config", "show", str(path)]) == 2
    assert "recipe_args.judge_sampels: unknown key; did you mean 'judge_samples'" in capsys.readouterr().err


# --------------------------------------------------------------------------- 4. datasets


@pytest.fixture
def local_datasets(tmp_path, monkeypatch):
    """HF offline, the datasets cache under tmp_path, and tmp_path as the working folder."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _splits(folder) -> None:
    for split in ("train", "test"):
        write_jsonl(folder / f"{split}.jsonl",
                    [{"question": f"{split} {i}", "answer": str(i)} for i in range(3)])


def test_a_dataset_name_with_a_slash_loads_a_local_folder_by_split_and_subset(local_datasets):
    _splits(local_datasets / "openai" / "gsm8k" / "main")
    rows = read_rows("openai/gsm8k", required=("question",), split="train", subset="main")
    assert [r["question"] for r in rows] == ["train 0", "train 1", "train 2"]
    assert read_rows("openai/gsm8k", split="test", subset="main")[0]["question"] == "test 0"
    with pytest.raises(DataError, match="openai/gsm8k"):
        read_rows("openai/gsm8k", split="validation", subset="main")


def test_local_dataset_folders_saved_to_disk_or_of_parquet_files(local_datasets):
    import datasets

    rows = [{"question": "q", "answer": "1"}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows * 2)}).save_to_disk("saved_dict")
    assert len(read_rows("saved_dict", split="test")) == 2
    with pytest.raises(DataError, match="no split 'dev'.*test, train"):
        read_rows("saved_dict", split="dev")
    datasets.Dataset.from_list(rows).save_to_disk("saved")
    assert read_rows("saved", required=("answer",)) == rows
    folder = local_datasets / "pq" / "data"
    folder.mkdir(parents=True)
    datasets.Dataset.from_list(rows * 3).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    assert len(read_rows("pq", split="train")) == 3
    with pytest.raises(DataError, match="missing field 'x'"):
        read_rows("pq", required=("x",), split="train")


def test_training_reads_data_train_split_and_eval_split(local_datasets, make_config):
    from selfrl.recipes import build_trainer

    _splits(local_datasets / "ds")
    cfg = make_config("splits", extra={"data": {"train": "ds", "eval": "ds"}})
    trainer = build_trainer(RunConfig.model_validate(cfg))
    assert sorted(r["question"] for r in trainer.prompts.rows) == ["train 0", "train 1", "train 2"]
    assert all(r["question"].startswith("test ") for r in trainer.eval_rows)
    cfg["data"].update(train_split="test", eval_split="train")
    trainer = build_trainer(RunConfig.model_validate(cfg))
    assert trainer.eval_rows[0]["question"] == "train 0"


def test_eval_cli_split_and_subset(local_datasets, tiny_model):
    _splits(local_datasets / "org" / "name" / "sub")
    out = local_datasets / "ev"
    assert main(["eval", "--model", str(tiny_model), "--data", "org/name", "--subset", "sub",
                 "--split", "train", "--n", "0", "--max-new-tokens", "2", "--limit", "1",
                 "--output", str(out)]) == 0
    assert json.loads((out / "samples.jsonl").read_text().splitlines()[0])["question"] == "train 0"


# --------------------------------------------------------------------------- 5. bare model names


def test_a_made_up_model_name_fails_fast_when_offline(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="'made-up-model-9f3' .*HF_HUB_OFFLINE is set"):
        resolve_model_path("made-up-model-9f3")
    assert main(["eval", "--model", "made-up-model-9f3", "--data", "x.jsonl"]) == 2
    assert time.monotonic() - start < 2.0
    err = capsys.readouterr().err.strip()
    assert "made-up-model-9f3" in err and len(err.splitlines()) == 1


def test_a_failed_first_contact_with_the_hub_fails_fast(monkeypatch):
    import huggingface_hub

    calls = []

    def unreachable(name, **kwargs):
        calls.append(name)
        raise ConnectionError("Name or service not known")

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(ModelNotFoundError, match="'owner/made-up-9f3'.*could not reach"):
        resolve_model_path("owner/made-up-9f3")
    assert calls == ["owner/made-up-9f3"]  # one contact, no retries


def test_a_cached_hub_model_resolves_to_its_snapshot_offline(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = tmp_path / "models--owner--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--owner--cached" / "refs").mkdir()
    (tmp_path / "models--owner--cached" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("owner/cached") == str(snapshot)
