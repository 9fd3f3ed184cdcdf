"""The README's "Contributing" examples (a recipe, an advantage estimator, a reward) run as written:
each module is loaded under its file's name, its test is run, and the registered names are
removed again.  A registry finding a new module of its package with no other change is tested
here too, since that is what makes each example one file."""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

from selfrl.algorithms import ADVANTAGE_ESTIMATORS
from selfrl.recipes import RECIPES
from selfrl.registry import Registry
from selfrl.rewards import REWARDS

README = Path(__file__).resolve().parents[1] / "README.md"
REGISTRIES = (RECIPES, ADVANTAGE_ESTIMATORS, REWARDS)


def contributing_examples() -> list[tuple[str, str, str]]:
    """``(module name, module code, test code)`` for each example of the Contributing section."""
    section = README.read_text(encoding="utf-8").split("## Contributing", 1)[1]
    blocks = list(re.finditer(r"```python\n(.*?)```", section, re.S))
    examples = []
    for module, test in zip(blocks[::2], blocks[1::2]):
        path = re.findall(r"`(selfrl/[\w/]+\.py)`", section[:module.start()])[-1]
        assert test.group(1).startswith("# tests/"), test.group(1)[:40]
        examples.append((path.removesuffix(".py").replace("/", "."), module.group(1), test.group(1)))
    return examples


def test_the_readme_has_the_three_examples():
    names = [name for name, _, _ in contributing_examples()]
    assert [n.split(".")[1] for n in names] == ["recipes", "algorithms", "rewards"], names


@pytest.mark.parametrize("name, code, test_code", contributing_examples(), ids=lambda x: str(x)[:30])
def test_contributing_example_runs(name, code, test_code, make_config):
    before = {registry.kind: set(registry.names()) for registry in REGISTRIES}
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(code, f"README:{name}", "exec"), module.__dict__)
        tests: dict = {}
        exec(compile(test_code, f"README:test of {name}", "exec"), tests)
        fixtures = {"make_config": make_config}
        for fn in (v for k, v in tests.items() if k.startswith("test_")):
            fn(**{p: fixtures[p] for p in inspect.signature(fn).parameters})
    finally:
        del sys.modules[name]
        for registry in REGISTRIES:
            for added in set(registry.names()) - before[registry.kind]:
                registry.unregister(added)


def test_a_new_module_in_a_registrys_package_is_found(tmp_path, monkeypatch):
    package = tmp_path / "plugins_for_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.py").write_text("from tests_registry import TABLE\n\n"
                                      "@TABLE.register('hello', loud=True)\ndef hello():\n    return 'hi'\n")
    table = Registry("greeting", builtins="plugins_for_test", traits=lambda loud=False: {"loud": loud})
    shim = types.ModuleType("tests_registry")
    shim.TABLE = table
    monkeypatch.setitem(sys.modules, "tests_registry", shim)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert table.get("hello")() == "hi" and table.traits("hello") == {"loud": True}
    assert table.names() == ("hello",)
