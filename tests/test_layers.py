"""Issue 20: the picture in the README's "Design" section stays true.  selfrl is built in layers,
and a module imports only from its own layer or the ones below it:

    face      the command line, the run config, pipelines, SFT, RLHF's reward-model training
    recipes   selfrl/recipes/: one module per recipe
    trainer   selfrl/trainer/: the loop of named steps, the recipe hooks and their context
    engine    rollout engines, rewards, the algorithm maths, evaluation, judging, self-play parts
    models    models, model store, data files, prompts
    base      the registry and the config loader

Lazy imports inside functions count (they still tie the modules together); imports under
``if TYPE_CHECKING:`` do not (they are annotations, never run).  Within a layer, no two of its
parts may import each other, so that each can be read (and tested) on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import selfrl

PACKAGE = Path(selfrl.__file__).parent

# Lowest first.  A module belongs to the part with the longest prefix of its name.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["selfrl", "selfrl.registry", "selfrl.config"]),  # "selfrl": the package's __init__ only
    ("models", ["selfrl.models", "selfrl.model_store", "selfrl.data", "selfrl.prompts"]),
    ("engine", ["selfrl.rollout", "selfrl.rewards", "selfrl.algorithms", "selfrl.eval", "selfrl.judging",
                "selfrl.selfplay"]),
    ("trainer", ["selfrl.trainer"]),
    ("recipes", ["selfrl.recipes"]),
    ("face", ["selfrl.cli", "selfrl.config.schema", "selfrl.pipeline", "selfrl.sft", "selfrl.rlhf",
              "selfrl.tiny", "selfrl.plot", "selfrl.report", "selfrl.trl_support", "selfrl.testing"]),
]
LEVEL = {part: level for level, (_, parts) in enumerate(LAYERS) for part in parts}
NAME = [name for name, _ in LAYERS]


def part_of(module: str) -> str:
    """The part (a prefix in ``LAYERS``) that ``module`` belongs to."""
    parts = [p for p in LEVEL if module == p or (p != "selfrl" and module.startswith(p + "."))]
    assert parts, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return max(parts, key=len)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """The selfrl modules that the module at ``path`` imports, lazily or not."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "selfrl")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "selfrl":
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module, deps in import_graph().items():
        for dep in deps:
            if LEVEL[part_of(dep)] > LEVEL[part_of(module)]:
                upward.append(f"{module} ({NAME[LEVEL[part_of(module)]]}) imports {dep} "
                              f"({NAME[LEVEL[part_of(dep)]]})")
    assert not upward, "imports from a layer above:\n" + "\n".join(sorted(upward))


def test_no_two_parts_import_each_other():
    edges: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        here = part_of(module)
        edges.setdefault(here, set()).update(part_of(d) for d in deps if part_of(d) != here)
    mutual = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not mutual, f"parts that import each other: {mutual}"


def test_the_checker_sees_lazy_imports_and_skips_annotations(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from selfrl.cli import main\n"
                      "def f():\n    from selfrl.recipes import RECIPES\n    import selfrl.trainer.trainer\n")
    assert imports_of(source) == {"selfrl.recipes", "selfrl.trainer.trainer"}
    assert part_of("selfrl.config.schema") == "selfrl.config.schema"
    assert part_of("selfrl.config") == part_of("selfrl.config.loader") == "selfrl.config"
    with pytest.raises(AssertionError, match="in no layer"):
        part_of("selfrl.new_module")
