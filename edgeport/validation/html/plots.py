"""The report page's plots, drawn with matplotlib's Agg canvas and embedded as PNG data: URIs.

matplotlib is imported here, inside the functions, so ``import edgeport`` and ``--help`` stay fast.
No text from the report is drawn into a figure (names go in the page's captions, escaped there).
"""
from __future__ import annotations

import base64
import io
from typing import Any, Mapping, Sequence

import numpy as np

#: points drawn in a scatter plot and values in an error histogram, sampled with a fixed seed
SCATTER_POINTS = 4000
HISTOGRAM_VALUES = 200_000
_DPI = 96
_BLUE, _ORANGE, _GREY = "#2f6db5", "#d9822b", "#8a939c"


def _figure(width: float, height: float, columns: int = 1, left: float = 0.75) -> tuple[Any, Any]:
    """A figure of ``columns`` axes side by side. Margins are fixed (in inches): a layout engine
    would draw every figure twice to measure it."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

    fig = Figure(figsize=(width, height), dpi=_DPI)
    fig.subplots_adjust(left=left / width, right=1 - 0.25 / width, bottom=0.55 / height, top=1 - 0.35 / height,
                        wspace=0.3)
    return fig, fig.subplots(1, columns, squeeze=False)[0]


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _sample(n: int, k: int) -> np.ndarray | slice:
    return slice(None) if n <= k else np.random.default_rng(0).choice(n, size=k, replace=False)


def output_errors(reference: np.ndarray, actual: np.ndarray) -> tuple[str | None, str | None]:
    """(PNG URI, problem): artifact against reference values (scatter with the y = x line) beside
    the histogram of their differences, for one output; the problem says why there is no plot."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    act = np.asarray(actual, dtype=np.float64).reshape(-1)
    if ref.size != act.size:
        return None, f"the artifact's output has {act.size} values, the reference {ref.size}"
    finite = np.isfinite(ref) & np.isfinite(act)
    ref, act = ref[finite], act[finite]
    if not ref.size:
        return None, "no finite values to plot"
    fig, (left, right) = _figure(8.4, 3.0, 2)
    pick = _sample(ref.size, SCATTER_POINTS)
    left.scatter(ref[pick], act[pick], s=4, alpha=0.45, color=_BLUE, linewidths=0)
    lo, hi = float(min(ref.min(), act.min())), float(max(ref.max(), act.max()))
    left.plot([lo, hi], [lo, hi], color=_GREY, lw=1, ls="--")
    left.set(xlabel="reference value", ylabel="artifact value", title="artifact vs reference")
    err = (act - ref)[_sample(ref.size, HISTOGRAM_VALUES)]
    right.hist(err, bins=60, color=_ORANGE, log=True)
    right.axvline(0.0, color=_GREY, lw=1)
    right.set(xlabel="artifact − reference", ylabel="values (log)", title="error histogram")
    return _png(fig), None


def latency_histogram(times_ms: Sequence[float], percentiles: Mapping[str, float | None]) -> str:
    """The distribution of timed runs, with the report's percentiles marked."""
    fig, (ax,) = _figure(6.0, 2.4)
    times = np.asarray(times_ms, dtype=np.float64)
    # a few slow runs (a page fault, a scheduler hiccup) would squeeze the rest into one bar
    top = float(np.percentile(times, 99))
    shown = times[times <= top * 1.5] if times.max() > top * 1.5 else times
    ax.hist(shown, bins=min(40, max(5, len(shown) // 3)), color=_BLUE)
    if shown.size < times.size:
        ax.set_title(f"{times.size - shown.size} slower run(s) off the chart (max {times.max():.4g} ms)", fontsize=9)
    for (label, x), style in zip(percentiles.items(), ("-", "--", ":")):
        if x is not None:
            ax.axvline(x, color="#1d232a", lw=1, ls=style, label=f"{label} {x:.4g} ms")
    ax.set(xlabel="ms per run", ylabel="runs")
    ax.legend(fontsize=8, framealpha=0.85)
    return _png(fig)


def size_bars(sizes: Mapping[str, int | None]) -> str:
    """Horizontal bars of the byte figures given (fp32 reference, artifact, gzip)."""
    shown = {k: v for k, v in sizes.items() if v}
    fig, (ax,) = _figure(6.0, 1.0 + 0.4 * len(shown), left=1.2)
    labels = list(shown)[::-1]
    values = [shown[k] / 1024 for k in labels]
    ax.barh(labels, values, color=[_GREY if k.startswith("fp32") else _BLUE for k in labels])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.1f} KB", va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.25)
    ax.set(xlabel="KB")
    return _png(fig)
