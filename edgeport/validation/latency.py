"""Latency statistics from raw timings, with their provenance."""
from __future__ import annotations

import numpy as np

from .report import Latency
from .runtimes.base import Timing


def summarize(t: Timing) -> Latency:
    """The report's latency block: percentiles in ms, the runtime and how the figure was made."""
    times = np.asarray(t.times_ms, dtype=np.float64)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(times, q)), 4) if times.size else None

    return Latency(provenance=t.provenance, runtime=t.runtime, where=t.where, threads=t.threads,
                   p50_ms=pct(50), p90_ms=pct(90), p99_ms=pct(99),
                   mean_ms=round(float(times.mean()), 4) if times.size else None, runs=int(times.size),
                   load_ms=round(float(t.load_ms), 3), details=dict(t.extra),
                   times_ms=tuple(float(x) for x in times))
