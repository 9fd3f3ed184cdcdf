"""Typed configuration: pydantic schemas loaded from YAML with dotted overrides.

Schema models inherit :class:`StrictModel` and document each option once with
``Field(description=...)``; see :mod:`selfrl.config.loader`.
"""

from selfrl.config.loader import (
    INCLUDE_KEY,
    ConfigError,
    StrictModel,
    apply_overrides,
    config_to_dict,
    deep_merge,
    describe,
    dump_config,
    load_config,
    parse_override,
    parse_yaml,
    read_yaml,
    type_name,
    validate_section,
)

__all__ = [
    "INCLUDE_KEY",
    "ConfigError",
    "StrictModel",
    "apply_overrides",
    "config_to_dict",
    "deep_merge",
    "describe",
    "dump_config",
    "load_config",
    "parse_override",
    "parse_yaml",
    "read_yaml",
    "type_name",
    "validate_section",
]
