"""The published latency table (``latencies.toml``): rows as published, each with its source.

Read strictly: every key, every model, device, runtime and source a row names is checked, so a
typo cannot quietly drop a row from the fit.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import ConfigError
from ..strict import check_keys, coerce, from_table, limits

#: runtime / delegate names a row may carry
RUNTIMES = ("litert-cpu", "litert-gpu", "litert-nnapi", "edgetpu", "qnn-npu", "coreml-cpu", "coreml-gpu",
            "coreml-ane", "onnxruntime-cpu")
CPU_RUNTIMES = ("litert-cpu", "coreml-cpu", "onnxruntime-cpu")
#: CPU runtimes whose thread count the caller sets (Core ML chooses its own)
THREADED_RUNTIMES = ("litert-cpu", "onnxruntime-cpu")


@dataclass(frozen=True)
class PublishedModel:
    name: str = ""
    display: str = ""
    family: str = ""
    published_macs_m: float | None = field(default=None, metadata=limits(min=0.0))
    macs_source: str = ""


@dataclass(frozen=True)
class Source:
    name: str = ""
    title: str = ""
    where: str = ""
    conditions: str = ""

    def cite(self) -> str:
        return f"{self.title} ({self.where})"


@dataclass(frozen=True)
class Row:
    model: str = ""
    device: str = ""
    runtime: str = field(default="litert-cpu", metadata=limits(choices=RUNTIMES))
    precision: str = field(default="fp32", metadata=limits(choices=("fp32", "fp16", "int8")))
    threads: int | None = field(default=None, metadata=limits(min=1, max=256))
    ms: float = field(default=0.0, metadata=limits(min=0.001, max=1e6, unit="ms"))
    source: str = ""
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        """The group a row belongs to: device × runtime × precision × threads."""
        return self.device, self.runtime, self.precision, self.threads


@dataclass(frozen=True)
class PublishedTable:
    version: int
    sources: Mapping[str, Source]
    models: Mapping[str, PublishedModel]
    extra_devices: Mapping[str, str]
    rows: tuple[Row, ...]

    def describe(self, row: Row) -> str:
        """One line naming the row and where it was published."""
        threads = f", {row.threads} threads" if row.threads else ""
        return (f"{self.models[row.model].display} on {row.device}, {row.runtime} {row.precision}{threads}: "
                f"{row.ms:g} ms — {self.sources[row.source].cite()}")


def parse_table(data: Mapping[str, Any], devices: set[str], where: str = "latencies.toml") -> PublishedTable:
    check_keys(where, data, ["version", "sources", "extra_devices", "models", "rows"])
    version = coerce(where, "version", data.get("version"), int, limits(min=1))
    sources = {k: from_table(Source, {**v, "name": k}, f"{where} [sources.{k}]")
               for k, v in dict(data.get("sources", {})).items()}
    models = {k: from_table(PublishedModel, {**v, "name": k}, f"{where} [models.{k}]")
              for k, v in dict(data.get("models", {})).items()}
    extra = {k: coerce(where, f"extra_devices.{k}", v, str) for k, v in dict(data.get("extra_devices", {})).items()}
    known_devices = devices | set(extra)
    rows = []
    raw_rows = data.get("rows", [])
    if not isinstance(raw_rows, list):
        raise ConfigError(f"{where}: rows must be an array of tables ([[rows]])")
    for i, t in enumerate(raw_rows):
        w = f"{where} [[rows]] #{i + 1}"
        row = from_table(Row, t, w)
        for key, known in (("model", models), ("device", known_devices), ("source", sources)):
            if getattr(row, key) not in known:
                raise ConfigError(f"{w}: unknown {key} {getattr(row, key)!r}; known: {', '.join(sorted(known))}")
        if (row.threads is None) == (row.runtime in THREADED_RUNTIMES):
            raise ConfigError(f"{w}: threads must be given for {', '.join(THREADED_RUNTIMES)} rows and only "
                              f"for them ({row.runtime})")
        rows.append(row)
    return PublishedTable(version, sources, models, extra, tuple(rows))


@lru_cache(maxsize=1)
def published_table() -> PublishedTable:
    """The table shipped with edgeport."""
    from .devices import builtin_devices

    text = resources.files("edgeport.targets").joinpath("latencies.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - shipped data is tested
        raise ConfigError(f"latencies.toml is not valid TOML: {exc}") from exc
    return parse_table(data, set(builtin_devices()))
