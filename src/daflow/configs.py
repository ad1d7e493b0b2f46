"""Reading configuration dictionaries (JSON files) into the frozen dataclasses of this package: one rule for all.

A key that is neither a field of the dataclass, nor private (``_class_name``, ``_diffusers_version``, …), nor in
the reader's declared list of keys it knows and ignores, is refused with one message naming the file's kind, the
unknown keys and the accepted ones: a misspelt key never falls back silently to a default. Tuples arrive from JSON
as lists and are converted back; :func:`config_to_dict` writes them as lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], data: dict[str, Any], *, what: str, ignored: Iterable[str] = ()) -> T:
    """``cls(**data)`` for the dataclass ``cls`` after the checks of the module docstring; ``what`` names the
    config in errors; ``ignored`` lists keys the published format carries that do not shape ``cls``."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    skip = set(ignored)
    unknown = sorted(k for k in data if k not in fields and k not in skip and not k.startswith("_"))
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    values = {}
    for key, value in data.items():
        if key in fields:
            values[key] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def config_to_dict(config) -> dict[str, Any]:
    """The dataclass ``config`` as a JSON-ready dict: its fields, tuples as lists (what :func:`config_from_dict`
    reads back)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
