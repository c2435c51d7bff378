"""What every runtime provides: load an artifact from disk, run it, time it.

A runtime never imports an exporter: it must run artifacts nobody here made.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, TensorSpec


@dataclass(frozen=True)
class Timing:
    """Raw latency samples (milliseconds per run) and where/how they were taken."""

    runtime: str
    provenance: str  # "measured" | "emulated" | "estimated"
    where: str       # e.g. "this host, onnxruntime 1.31.1 CPU provider, 1 thread"
    threads: int
    times_ms: tuple[float, ...]
    load_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


class Session(ABC):
    """A loaded artifact. ``session(feed)`` runs one batch given as ``{input name: array}``."""

    runtime_name: str = ""
    provenance: str = "measured"
    input_specs: tuple[TensorSpec, ...] = ()
    output_names: tuple[str, ...] = ()
    load_ms: float = 0.0
    threads: int = 1

    @abstractmethod
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (normally a batch of one); outputs keyed by output name."""

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(feed)

    def predict(self, data: Dataset) -> dict[str, np.ndarray]:
        """Outputs for every sample of ``data``, stacked along the first axis."""
        outs: dict[str, list[np.ndarray]] = {n: [] for n in self.output_names}
        for i in range(len(data)):
            res = self.run(data.sample(i))
            for n in self.output_names:
                outs[n].append(np.asarray(res[n]))
        return {n: np.concatenate(v) for n, v in outs.items()}

    def where(self) -> str:
        return f"this host, {self.runtime_name}, {self.threads} thread(s)"

    def facts(self) -> dict[str, Any]:
        """What a run in this runtime proves and what it cannot (emulated runtimes say so)."""
        return {}

    def time(self, feed: dict[str, np.ndarray], warmup: int, runs: int) -> Timing:
        """Time ``runs`` calls after ``warmup`` calls on one input."""
        for _ in range(warmup):
            self.run(feed)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self.run(feed)
            times.append((time.perf_counter() - t0) * 1e3)
        return Timing(self.runtime_name, self.provenance, self.where(), self.threads,
                      tuple(times), self.load_ms)

    def close(self) -> None:
        """Release what the session holds (processes, browsers)."""


class Runtime(ABC):
    """One way of running artifacts of some formats."""

    name: str = ""
    formats: tuple[str, ...] = ()

    @abstractmethod
    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        """Load the artifact at ``path`` (a file or folder); raise RuntimeLoadError on a bad one."""
