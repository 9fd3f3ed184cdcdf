"""Load a typed config from YAML plus dotted command-line overrides.

The schema is a tree of pydantic models that inherit :class:`StrictModel`, so an unknown
key is an error.  Each option's help text is written once, as ``Field(description=...)``;
:func:`describe` turns the schema into a reference table for the docs and the CLI.

Loading runs in three steps, each a plain function over dicts:

1. :func:`read_yaml` reads the file and merges any top-level ``include:`` files under it
   (paths relative to the including file; later includes and the file itself win).
2. :func:`apply_overrides` sets ``key.sub=value`` strings; values are parsed as YAML, so
   ``lr=1e-5``, ``flag=true`` and ``ks=[1,4]`` come out typed.  An override replaces the
   value at its key (a mapping value is not merged into the existing one).
3. :func:`load_config` validates against the schema and turns pydantic's errors into one
   :class:`ConfigError` that names every bad key with its expected type, or with the
   nearest valid keys when the key is unknown.

>>> from pydantic import Field
>>> class Train(StrictModel):
...     learning_rate: float = Field(1e-6, description="AdamW step size.")
>>> class Run(StrictModel):
...     train: Train = Train()
>>> load_config(Run, None, ["train.learning_rate=1e-5"]).train.learning_rate
1e-05
>>> load_config(Run, None, ["train.lerning_rate=1e-5"])
Traceback (most recent call last):
...
selfrl.config.loader.ConfigError: invalid config (overrides: train.lerning_rate=1e-5):
  train.lerning_rate: unknown key; did you mean 'learning_rate'? [from override 'train.lerning_rate=1e-5']
"""

import difflib
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_jsonable_python

INCLUDE_KEY = "include"
M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]

# Pydantic error types that mean "this value has the wrong type", as opposed to a
# constraint (gt=0) or a custom validator failing on a value of the right type.
_TYPE_ERRORS = {"literal_error", "enum", "is_instance_of", "is_subclass_of", "int_from_float",
                "none_required", "union_tag_invalid", "bool_parsing"}


class ConfigError(ValueError):
    """A config file, override or value that does not fit the schema.

    ``problems``: ``(key path, line)`` per bad key, when the error comes from
    :func:`validate_section` (so that :func:`load_config` can name the override that set it).
    """

    def __init__(self, message: str, problems: Sequence[tuple[Sequence[Any], str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class StrictModel(BaseModel):
    """Base class for schema models: unknown keys and mistyped assignments are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# PyYAML follows YAML 1.1, where ``1e-5`` (no dot) is a string; configs are full of such
# learning rates, so both the loader and the dumper also resolve that spelling as a float.
# The dumper needs it too, or the string "1e-5" would be written unquoted and read back
# as a float.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parse YAML text, reading ``1e-5`` as a float.

    >>> parse_yaml("lr: 1e-5")
    {'lr': 1e-05}
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


# ---------------------------------------------------------------- reading and merging


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``update``, merging nested mappings; other values replace.

    >>> deep_merge({"a": {"x": 1, "y": 2}, "k": [1]}, {"a": {"y": 3}, "k": [2]})
    {'a': {'x': 1, 'y': 3}, 'k': [2]}
    """
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping from ``path``, with its ``include:`` files merged underneath."""
    path = Path(path)
    where = f" (included from {_chain[-1]})" if _chain else ""
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"config include cycle: {cycle}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}{where}")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}{where}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML{where}:\n{err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path}{where} must hold a mapping of keys at the top level, "
            f"got {type(data).__name__}: {_short(data)}"
        )
    return _merge_includes(path, data, (*_chain, path.resolve()))


def _merge_includes(path: Path, data: dict[str, Any], chain: tuple[Path, ...]) -> dict[str, Any]:
    includes = data.pop(INCLUDE_KEY, None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not (isinstance(includes, list) and all(isinstance(i, str) for i in includes)):
        raise ConfigError(f"{path}: '{INCLUDE_KEY}' must be a file name or a list of file names, "
                          f"got {_short(includes)}")
    merged: dict[str, Any] = {}
    for name in includes:
        merged = deep_merge(merged, read_yaml(path.parent / name, chain))
    return deep_merge(merged, data)


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into its key path and its YAML-parsed value.

    >>> parse_override("train.ks=[1, 4]")
    (['train', 'ks'], [1, 4])
    """
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"malformed override {text!r}: expected key.sub=value, e.g. train.lr=1e-5")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML:\n{err}") from None
    return [p.strip() for p in parts], value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.sub=value`` override set, in order.

    Missing intermediate keys become mappings, so ``a.b.c=x`` works on an empty config.

    >>> apply_overrides({"train": {"lr": 1.0}}, ["train.lr=1e-5", "model.name=tiny"])
    {'train': {'lr': 1e-05}, 'model': {'name': 'tiny'}}
    """
    result = deep_merge({}, data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {where} is {_short(child)}, not a mapping")
            else:
                child = node[part] = dict(child)  # copy, so the caller's data stays untouched
            node = child
        node[parts[-1]] = value
    return result


# ---------------------------------------------------------------- loading


def load_config(schema: type[M], path: str | Path | None, overrides: Sequence[str] = ()) -> M:
    """Read ``path`` (or start empty when None), apply ``overrides``, validate against ``schema``.

    Raises :class:`ConfigError` listing every problem at once.
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        lines = [line for e in err.errors() for line in _explain_all(schema, e, overrides)]
        source = [f"file: {path}"] if path is not None else []
        source += [f"overrides: {' '.join(overrides)}"] if overrides else []
        header = f"invalid config ({'; '.join(source)}):" if source else "invalid config:"
        body = "\n".join(f"  {line}" for line in dict.fromkeys(lines))  # union members repeat
        raise ConfigError(f"{header}\n{body}") from None


def validate_section(schema: type[M], data: Mapping[str, Any], prefix: str) -> M:
    """Validate a nested mapping (e.g. ``recipe_args``) with the same messages, keys under ``prefix``.

    Raised inside a schema's validator, the :class:`ConfigError` reaches :func:`load_config`,
    which reports its lines as its own (with the override that set each key).

    >>> class A(StrictModel):
    ...     k: int = 1
    >>> validate_section(A, {"k": 2}, "recipe_args").k
    2
    >>> validate_section(A, {"kk": 2}, "recipe_args")
    Traceback (most recent call last):
    ...
    selfrl.config.loader.ConfigError: invalid config:
      recipe_args.kk: unknown key; did you mean 'k'?
    """
    try:
        return schema.model_validate(dict(data))
    except ValidationError as err:
        problems = [_problem(schema, e, prefix.split(".")) for e in err.errors()]
        body = "\n".join(f"  {line}" for line in dict.fromkeys(line for _, line in problems))
        raise ConfigError(f"invalid config:\n{body}", problems) from None


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """The resolved config as plain YAML-safe values (paths as str, tuples as lists)."""
    return cfg.model_dump(mode="json", by_alias=True)


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML that :func:`load_config` reads back to an equal config."""
    return yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------- error messages


def _explain_all(schema: type[BaseModel], error: Any, overrides: Sequence[str]) -> list[str]:
    """The lines for one pydantic error: its own, or those of a :func:`validate_section` run by a
    validator (its ``ConfigError`` arrives as the error's context)."""
    nested = error.get("ctx", {}).get("error")
    if error["type"] == "value_error" and isinstance(nested, ConfigError) and nested.problems:
        return [_with_source(line, parts, overrides) for parts, line in nested.problems]
    parts, line = _problem(schema, error)
    return [_with_source(line, parts, overrides)]


def _with_source(line: str, parts: Sequence[Any], overrides: Sequence[str]) -> str:
    source = _override_for(list(parts), overrides)
    return f"{line} [from override {source!r}]" if source else line


def _problem(schema: type[BaseModel], error: Any, prefix: Sequence[Any] = ()) -> tuple[list[Any], str]:
    """The key path of one pydantic error (under ``prefix``) and its readable line."""
    loc = tuple(error["loc"])
    parts, annotation, parent = _resolve(schema, loc)
    parts = [*prefix, *parts]
    key = _dotted(parts)
    kind = error["type"]
    if kind == "extra_forbidden":
        line = f"{key}: unknown key; {_suggest(str(parts[-1]), parent)}"
    elif kind == "missing":
        line = f"{key}: required key is missing (expected {_expected(annotation)})"
    elif kind in _TYPE_ERRORS or kind.endswith(("_type", "_parsing")):
        line = f"{key}: wrong type: expected {_expected(annotation)}, got {_given(error['input'])}"
    elif _is_model(_strip(annotation)):  # a model validator: the input is the whole section
        line = f"{key}: {_message(error)}"
    else:
        line = f"{key}: {_message(error)} (expected {_expected(annotation)}, got {_given(error['input'])})"
    return parts, line


def _resolve(schema: type[BaseModel], loc: Loc) -> tuple[list[Any], Any, type[BaseModel] | None]:
    """Follow an error location through the schema.

    Returns the key path the user wrote (without pydantic's union-member tags), the
    annotation expected there (None when the key is unknown) and the model that holds
    the last key.
    """
    parts: list[Any] = []
    current: Any = schema
    parent: type[BaseModel] | None = None
    for i, step in enumerate(loc):
        current = _non_none(_strip(current))
        model = current if _is_model(current) else None
        if model is not None and isinstance(step, str):
            field = _fields_by_key(model).get(step)
            parts.append(step)
            parent, current = model, (field.annotation if field else None)
        elif _is_union(current):
            # pydantic tags each union member it tried ('int', 'TrainConfig', ...); keep the
            # whole union as the expected type unless the error lies inside that member.
            member = _union_member(current, step)
            if member is None:
                parts.append(step)
                current = None
            elif i < len(loc) - 1:
                current = member
        else:
            parts.append(step)
            current = _item_type(current, step)
    return parts, current, parent


def _message(error: Any) -> str:
    """Pydantic's message, without the prefix it puts before a custom validator's own text."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if error["msg"].startswith(prefix):
            return error["msg"][len(prefix):]
    return error["msg"]


def _suggest(key: str, model: type[BaseModel] | None) -> str:
    valid = list(_fields_by_key(model)) if model is not None else []
    if not valid:
        return "this section takes no keys"
    close = difflib.get_close_matches(key, valid, n=3)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid keys here: " + ", ".join(valid)


def _override_for(parts: list[Any], overrides: Sequence[str]) -> str | None:
    """The last override that set this key, a key above it, or a key below it."""
    if not parts:  # an error about the whole config is no single override's doing
        return None
    for text in reversed(overrides):
        keys, _ = parse_override(text)
        n = min(len(keys), len(parts))
        if [str(p) for p in parts[:n]] == keys[:n]:
            return text
    return None


def _dotted(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _expected(annotation: Any) -> str:
    if annotation is None:
        return "nothing"
    annotation = _strip(annotation)
    if _is_model(annotation):
        return f"a mapping ({annotation.__name__})"
    return type_name(annotation)


def _given(value: Any) -> str:
    return f"{_short(value)} ({type(value).__name__})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- schema introspection


def type_name(annotation: Any) -> str:
    """A short readable name for a type annotation.

    >>> type_name(list[int]), type_name(typing.Optional[float])
    ('list[int]', 'float | None')
    >>> type_name(typing.Literal["a", "b"])
    "Literal['a', 'b']"
    """
    annotation = _strip(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if _is_union(annotation):
        return " | ".join(type_name(a) for a in args)
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe(schema: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """One ``(dotted key, type, default, description)`` row per leaf option, nested models
    flattened.  A required option's default reads ``(required)``; defaults are shown as
    JSON, which is also valid YAML.

    >>> from pydantic import Field
    >>> class Train(StrictModel):
    ...     lr: float = Field(1e-6, description="Step size.")
    >>> class Run(StrictModel):
    ...     train: Train = Train()
    >>> describe(Run)
    [('train.lr', 'float', '1e-06', 'Step size.')]
    """
    return list(_describe_rows(schema, ""))


def _describe_rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for key, field in _fields_by_key(model).items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from _describe_rows(nested, f"{prefix}{key}.")
            continue
        if field.is_required():
            default = "(required)"
        else:
            value = field.get_default(call_default_factory=True, validated_data={})
            default = json.dumps(to_jsonable_python(value))
        yield f"{prefix}{key}", type_name(field.annotation), default, field.description or ""


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a section, also when the section is optional (``Model | None``)."""
    annotation = _non_none(_strip(annotation))
    return annotation if _is_model(annotation) else None


def _fields_by_key(model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields under the key a config file uses for them (the alias, if any)."""
    return {(field.alias or name): field for name, field in model.model_fields.items()}


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _non_none(annotation: Any) -> Any:
    """``X`` for ``X | None``: pydantic's error locations pass straight into X."""
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return annotation


def _union_member(union: Any, tag: Any) -> Any:
    """The member of ``union`` that pydantic's location tag ``tag`` names, if any."""
    wanted = str(tag).replace(" ", "").lower()
    for member in typing.get_args(union):
        member = _strip(member)
        names = {type_name(member), getattr(member, "__name__", "")}
        if wanted in {n.replace(" ", "").lower() for n in names}:
            return member
    return None


def _item_type(container: Any, step: Any) -> Any:
    """The annotation of ``container[step]`` (list item, tuple slot, dict value), or None."""
    origin, args = typing.get_origin(container), typing.get_args(container)
    if origin in (list, set, frozenset) or (origin is Sequence and args):
        return args[0] if args else None
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[step] if isinstance(step, int) and step < len(args) else None
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


__all__ = [
    "INCLUDE_KEY", "ConfigError", "StrictModel", "apply_overrides", "config_to_dict", "deep_merge",
    "describe", "dump_config", "load_config", "parse_override", "parse_yaml", "read_yaml", "type_name",
]
