"""Strict reading of configuration tables (TOML profiles, options) into frozen dataclasses.

A field declares its type by its annotation and its limits by ``field(metadata=limits(...))``;
:func:`from_table` refuses unknown keys, wrong types (``true`` is not a number, ``1`` is not a
flag) and values out of range, each in one line naming the key.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def limits(*, min: float | None = None, max: float | None = None, choices: Sequence[Any] | None = None,
           unit: str = "") -> dict[str, Any]:
    """Field metadata: inclusive range, allowed values, and the unit a message should name."""
    return {"min": min, "max": max, "choices": tuple(choices) if choices is not None else None, "unit": unit}


def check_keys(where: str, table: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")


def _type_name(t: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(t, str(t))


def coerce(where: str, key: str, value: Any, annotation: Any, meta: Mapping[str, Any] | None = None) -> Any:
    """``value`` checked against ``annotation`` (bool, int, float, str, Optional of those,
    tuple[str, ...]) and the field's limits."""
    meta = meta or {}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return coerce(where, key, value, inner[0], meta)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        return tuple(coerce(where, f"{key}[{i}]", v, args[0], meta) for i, v in enumerate(value))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        out: Any = value
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        out = value
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        out = float(value)
    elif annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        out = value
    else:  # pragma: no cover - a field type this reader does not know is a programming error
        raise TypeError(f"unsupported field type {annotation!r} for {key}")
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(map(str, choices))}; got {out!r}")
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and out < lo:
        raise ConfigError(f"{where}: {key} must be >= {lo}{unit}, got {out!r}")
    if hi is not None and out > hi:
        raise ConfigError(f"{where}: {key} must be <= {hi}{unit}, got {out!r}")
    return out


def from_table(cls: type[T], table: Mapping[str, Any] | None, where: str) -> T:
    """An instance of the frozen dataclass ``cls`` from ``table``; defaults fill what is absent."""
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}"[:200])
    table = dict(table)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    check_keys(where, table, list(fields))
    hints = typing.get_type_hints(cls)
    values = {k: coerce(where, k, v, hints[k], fields[k].metadata) for k, v in table.items()}
    return cls(**values)


def to_table(obj: Any) -> dict[str, Any]:
    """A dataclass as plain data (tuples as lists), the inverse of :func:`from_table`."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
