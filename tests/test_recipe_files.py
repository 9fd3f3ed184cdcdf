"""Every config shipped in ``recipes/`` loads under its schema: a renamed or mistyped key in a
recipe the README points to fails here, not in a user's first run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfrl.config.loader import load_config
from selfrl.config.schema import RunConfig
from selfrl.pipeline import PipelineConfig
from selfrl.rlhf.rm import RmConfig
from selfrl.sft import SftConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGE_SCHEMA = {"sft": SftConfig, "rm": RmConfig, "train": RunConfig}


def _schemas() -> dict[Path, type]:
    """Each YAML under recipes/ and the schema it is read with: a pipeline's stages by their kind,
    a training recipe (or a variant that includes one) by its keys, the rest as SFT configs."""
    found: dict[Path, type] = {}
    for path in sorted(RECIPES.rglob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "stages" in raw:
            found[path] = PipelineConfig
            for stage in raw["stages"]:
                if stage.get("config"):
                    found[path.parent / stage["config"]] = STAGE_SCHEMA[stage["kind"]]
    for path in sorted(RECIPES.rglob("*.yaml")):
        if path not in found:
            raw = yaml.safe_load(path.read_text())
            run_keys = {"recipe", "include", "rollout", "rewards"}  # include: a variant of a run recipe
            found[path] = RunConfig if run_keys & set(raw) else SftConfig
    return found


SCHEMAS = _schemas()


def test_the_recipes_folder_is_found_and_sorted_into_schemas():
    assert len(SCHEMAS) >= 20
    kinds = set(SCHEMAS.values())
    assert {RunConfig, SftConfig, RmConfig, PipelineConfig} <= kinds


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_shipped_recipe_loads_under_its_schema(path):
    load_config(SCHEMAS[path], path, [])
