"""The config loader: YAML + dotted overrides validated against a small example schema."""

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, ValidationError, model_validator

from selfrl.config import (
    ConfigError,
    StrictModel,
    apply_overrides,
    deep_merge,
    describe,
    dump_config,
    load_config,
    type_name,
)


class Optim(StrictModel):
    learning_rate: float = Field(1e-6, description="AdamW step size.")
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], description="AdamW betas.")


class Train(StrictModel):
    steps: int = Field(100, gt=0, description="Optimizer steps.")
    group_size: int = Field(8, description="Completions per prompt.")
    eval_ks: list[int] = Field(default_factory=lambda: [1], description="k values for pass@k.")
    bf16: bool = Field(False, description="Train in bfloat16.")
    loss: Literal["grpo", "dr_grpo"] = Field("grpo", description="Policy loss.")
    seed: int | None = Field(None, description="Random seed; None draws one.")
    optim: Optim = Optim()


class Run(StrictModel):
    model: str = Field(description="Model name or path.")
    output_dir: Path = Field(Path("runs/out"), description="Where checkpoints go.")
    note: str = Field("", description="Free text.")
    train: Train = Train()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(*args) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args)
    return str(info.value)


# ---------------------------------------------------------------- loading and overrides


def test_yaml_and_overrides(tmp_path):
    path = write(tmp_path, "run.yaml", "model: tiny\ntrain:\n  steps: 5\n  optim:\n    learning_rate: 3e-4\n")
    cfg = load_config(Run, path, [
        "train.optim.learning_rate=1e-5",
        "train.eval_ks=[1,4]",
        "train.bf16=true",
        "train.loss=dr_grpo",
        "train.seed=null",
        "note=a=b",  # only the first '=' splits
    ])
    assert cfg.model == "tiny"
    assert cfg.train.steps == 5  # from the file, untouched by overrides
    assert cfg.train.optim.learning_rate == pytest.approx(1e-5)
    assert cfg.train.eval_ks == [1, 4]
    assert cfg.train.bf16 is True
    assert cfg.train.loss == "dr_grpo"
    assert cfg.train.seed is None
    assert cfg.note == "a=b"
    assert cfg.train.optim.betas == [0.9, 0.999]  # default kept


def test_exponent_without_dot_is_a_float_in_files_and_overrides(tmp_path):
    # PyYAML alone reads 1e-5 as a string; a `float | str` field would then keep the string.
    path = write(tmp_path, "run.yaml", "model: tiny\ntrain: {optim: {learning_rate: 1e-5}}\n")
    assert load_config(Run, path).train.optim.learning_rate == 1e-5
    assert apply_overrides({}, ["a.lr=2E-3"]) == {"a": {"lr": 2e-3}}


def test_no_file_overrides_create_nested_mappings():
    cfg = load_config(Run, None, ["model=m", "train.optim.learning_rate=0.5"])
    assert cfg.train.optim.learning_rate == 0.5
    assert apply_overrides({"x": 1}, ["a.b.c=x"]) == {"x": 1, "a": {"b": {"c": "x"}}}


def test_apply_overrides_leaves_input_untouched():
    data = {"train": {"steps": 1}}
    apply_overrides(data, ["train.steps=2"])
    assert data == {"train": {"steps": 1}}


def test_override_later_wins_and_replaces_mappings():
    assert apply_overrides({}, ["a=1", "a=2"]) == {"a": 2}
    assert apply_overrides({"t": {"x": 1, "y": 2}}, ["t={y: 3}"]) == {"t": {"y": 3}}


@pytest.mark.parametrize("bad", ["train.steps", "=3", "train..steps=3", " =1"])
def test_malformed_override(bad):
    message = config_error(Run, None, ["model=m", bad])
    assert "malformed override" in message and repr(bad) in message
    assert "key.sub=value" in message


def test_override_value_that_is_not_yaml():
    assert "not valid YAML" in config_error(Run, None, ["train.eval_ks=[1,4"])


def test_override_through_a_scalar():
    message = config_error(Run, None, ["model=m", "model.name=x"])
    assert "model is 'm', not a mapping" in message


# ---------------------------------------------------------------- error messages


def test_unknown_key_top_level_suggests_nearest(tmp_path):
    path = write(tmp_path, "run.yaml", "model: tiny\ntrian:\n  steps: 3\n")
    message = config_error(Run, path)
    assert str(path) in message
    assert "trian: unknown key; did you mean 'train'?" in message


def test_unknown_key_nested_names_full_path(tmp_path):
    path = write(tmp_path, "run.yaml", "model: tiny\ntrain:\n  optim:\n    lerning_rate: 1e-5\n")
    message = config_error(Run, path)
    assert "train.optim.lerning_rate: unknown key; did you mean 'learning_rate'?" in message


def test_unknown_key_without_close_match_lists_all_keys():
    message = config_error(Run, None, ["model=m", "train.optim.zzz=1"])
    assert "train.optim.zzz: unknown key; valid keys here: learning_rate, betas" in message


def test_override_typo_is_reported_with_its_override():
    message = config_error(Run, None, ["model=m", "train.grop_size=4"])
    assert "train.grop_size: unknown key; did you mean 'group_size'?" in message
    assert "[from override 'train.grop_size=4']" in message
    assert "overrides: model=m train.grop_size=4" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.optim.learning_rate=fast",
         "train.optim.learning_rate: wrong type: expected float, got 'fast' (str)"),
        ("train.steps=2.5", "train.steps: wrong type: expected int, got 2.5 (float)"),
        ("train.eval_ks=4x", "train.eval_ks: wrong type: expected list[int], got '4x' (str)"),
        ("train.eval_ks=[1,x]", "train.eval_ks[1]: wrong type: expected int, got 'x' (str)"),
        ("train.loss=ppo", "train.loss: wrong type: expected Literal['grpo', 'dr_grpo'], got 'ppo' (str)"),
        ("train.seed=[1]", "train.seed: wrong type: expected int | None, got [1] (list)"),
        ("train=5", "train: wrong type: expected a mapping (Train), got 5 (int)"),
    ],
)
def test_wrong_type_names_key_expected_type_and_value(override, expected):
    message = config_error(Run, None, ["model=m", override])
    assert expected in message
    assert "Traceback" not in message and "errors.pydantic.dev" not in message


def test_constraint_error_names_key_and_value():
    message = config_error(Run, None, ["model=m", "train.steps=0"])
    assert "train.steps: Input should be greater than 0 (expected int, got 0 (int))" in message


def test_missing_required_key():
    assert "model: required key is missing (expected str)" in config_error(Run, None)


def test_all_errors_are_listed_one_per_line(tmp_path):
    path = write(tmp_path, "run.yaml", "model: tiny\ntrain:\n  stepz: 3\n  bf16: maybe\n")
    message = config_error(Run, path, ["train.optim.learning_rate=x"])
    lines = message.splitlines()
    assert lines[0].startswith("invalid config (file: ")
    assert len(lines) == 4
    assert any(line.strip().startswith("train.stepz: unknown key") for line in lines)
    assert any(line.strip().startswith("train.bf16: wrong type: expected bool") for line in lines)
    assert any(line.strip().startswith("train.optim.learning_rate: wrong type") for line in lines)


class Reward(StrictModel):
    weight: float = 1.0


class Mix(StrictModel):
    weights: dict[str, float] = Field(default_factory=dict, description="Reward weights by name.")
    judge: Reward | None = Field(None, description="Optional judge section.")

    @model_validator(mode="after")
    def weights_are_positive(self):
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("reward weights must be positive")
        return self


def test_optional_section_and_dict_field_errors():
    message = config_error(Mix, None, ["judge.wieght=2", "weights.acc=high"])
    assert "judge.wieght: unknown key; did you mean 'weight'?" in message
    assert "weights.acc: wrong type: expected float, got 'high' (str)" in message
    assert load_config(Mix, None, ["judge.weight=2"]).judge.weight == 2.0


def test_model_validator_message_is_kept_plain():
    message = config_error(Mix, None, ["weights.acc=-1"])
    assert message.splitlines()[1] == "  (top level): reward weights must be positive"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_file(tmp_path, text):
    path = write(tmp_path, "list.yaml", text)
    message = config_error(Run, path)
    assert str(path) in message and "must hold a mapping" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert config_error(Run, path) == f"config file not found: {path}"


def test_invalid_yaml_names_file(tmp_path):
    path = write(tmp_path, "bad.yaml", "model: [unclosed\n")
    message = config_error(Run, path)
    assert str(path) in message and "not valid YAML" in message


def test_empty_file_is_an_empty_mapping(tmp_path):
    path = write(tmp_path, "empty.yaml", "")
    assert load_config(Run, path, ["model=m"]).model == "m"


def test_include_deep_merges_under_the_including_file(tmp_path):
    base = "model: base\ntrain:\n  steps: 7\n  group_size: 4\n  optim: {learning_rate: 0.1}\n"
    write(tmp_path, "base.yaml", base)
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", "run.yaml", "include: ../base.yaml\ntrain:\n  group_size: 16\n")
    cfg = load_config(Run, path, ["train.steps=9"])
    assert cfg.model == "base"
    assert cfg.train.group_size == 16  # the including file wins
    assert cfg.train.steps == 9  # overrides win over both
    assert cfg.train.optim.learning_rate == 0.1


def test_include_list_later_wins_and_nests(tmp_path):
    write(tmp_path, "a.yaml", "model: a\nnote: from-a\n")
    write(tmp_path, "b.yaml", "include: a.yaml\nmodel: b\n")
    path = write(tmp_path, "run.yaml", "include: [a.yaml, b.yaml]\n")
    cfg = load_config(Run, path)
    assert (cfg.model, cfg.note) == ("b", "from-a")


def test_include_errors(tmp_path):
    path = write(tmp_path, "run.yaml", "include: other.yaml\nmodel: m\n")
    message = config_error(Run, path)
    assert "config file not found" in message and "other.yaml" in message
    assert f"included from {path}" in message
    write(tmp_path, "loop_a.yaml", "include: loop_b.yaml\n")
    write(tmp_path, "loop_b.yaml", "include: loop_a.yaml\n")
    assert "include cycle" in config_error(Run, tmp_path / "loop_a.yaml")
    bad = write(tmp_path, "bad.yaml", "include: {a: 1}\n")
    assert "must be a file name or a list of file names" in config_error(Run, bad)


def test_deep_merge():
    base = {"a": {"x": 1, "y": {"z": 2}}, "k": [1, 2]}
    merged = deep_merge(base, {"a": {"y": {"w": 3}}, "k": [3]})
    assert merged == {"a": {"x": 1, "y": {"z": 2, "w": 3}}, "k": [3]}
    assert base == {"a": {"x": 1, "y": {"z": 2}}, "k": [1, 2]}


# ---------------------------------------------------------------- dump and describe


def test_dump_round_trips(tmp_path):
    cfg = load_config(Run, None, [
        "model=tiny", "note='1e-5'", "train.optim.learning_rate=1e-5", "train.eval_ks=[1,4,8]",
        "train.seed=3", "output_dir=/tmp/x",
    ])
    text = dump_config(cfg)
    assert text.startswith("model: tiny\n")  # schema order, not sorted
    again = load_config(Run, write(tmp_path, "dump.yaml", text))
    assert again == cfg
    assert isinstance(again.note, str)  # a string that looks like a float stays a string


def test_strict_model_checks_assignment():
    cfg = load_config(Run, None, ["model=m"])
    with pytest.raises(ValidationError):
        cfg.train.steps = "many"


def test_describe_lists_every_leaf():
    rows = {key: (kind, default, text) for key, kind, default, text in describe(Run)}
    assert list(rows)[:4] == ["model", "output_dir", "note", "train.steps"]
    assert rows["model"] == ("str", "(required)", "Model name or path.")
    assert rows["output_dir"] == ("Path", '"runs/out"', "Where checkpoints go.")
    assert rows["train.optim.learning_rate"] == ("float", "1e-06", "AdamW step size.")
    assert rows["train.optim.betas"] == ("list[float]", "[0.9, 0.999]", "AdamW betas.")
    assert rows["train.loss"] == ("Literal['grpo', 'dr_grpo']", '"grpo"', "Policy loss.")
    assert rows["train.seed"] == ("int | None", "null", "Random seed; None draws one.")
    assert rows["train.bf16"] == ("bool", "false", "Train in bfloat16.")
    assert "train" not in rows and "train.optim" not in rows
    assert describe(Mix) == [
        ("weights", "dict[str, float]", "{}", "Reward weights by name."),
        ("judge.weight", "float", "1.0", ""),
    ]


def test_type_name():
    assert type_name(dict[str, list[int]]) == "dict[str, list[int]]"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"
    assert type_name(Literal["a"] | None) == "Literal['a'] | None"
