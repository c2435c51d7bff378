"""HTML views of reports: ``report.html`` in every bundle, ``index.html`` for a multi-target export.

Self-contained pages (inline style, plots as PNG data: URIs, a Content-Security-Policy that lets
them load nothing) drawn with matplotlib's Agg canvas. The page is a view: report.json holds the
verdict. A plot that cannot be drawn (matplotlib missing, an output with no finite value) is
replaced on the page by the reason, and the export goes on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from ...errors import one_line
from .index_page import IndexRow, render_index
from .report_page import Figures, render_report

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..golden import Golden
    from ..report import Latency, Report

REPORT_HTML = "report.html"
INDEX_HTML = "index.html"
#: outputs plotted per page (a model with more lists the rest without plots)
MAX_OUTPUT_PLOTS = 12


def _latencies(report: "Report") -> list["Latency"]:
    found = [report.latency] if report.latency is not None else []
    return found + [run.latency for run in report.runtimes if run.latency is not None]


def _draw(report: "Report", reference: Mapping[str, "np.ndarray"], files: Sequence[tuple[str, int]]) -> Figures:
    problems: dict[str, str] = {}
    names = list(reference)
    lats = _latencies(report)
    try:
        import matplotlib  # noqa: F401  (the plots import its parts; this says whether it is there)
    except ImportError:
        why = "matplotlib is not installed (pip install matplotlib): no plots"
        problems.update({f"output:{n}": why for n in names}, size=why,
                        **{f"latency:{lat.runtime}": why for lat in lats})
        return Figures(problems=problems, files=files)
    from . import plots

    outputs: dict[str, str] = {}
    actual = report.artifact_outputs
    for i, name in enumerate(names):
        key = f"output:{name}"
        if i >= MAX_OUTPUT_PLOTS:
            problems[key] = f"only the first {MAX_OUTPUT_PLOTS} outputs are plotted"
        elif actual is None or name not in actual:
            problems[key] = "the artifact's outputs were not kept with this report"
        elif uri := _attempt(problems, key, plots.output_errors, reference[name], actual[name]):
            outputs[name] = uri
    latency: dict[str, str] = {}
    for lat in lats:
        key = f"latency:{lat.runtime}"
        if not lat.times_ms:
            problems[key] = "the raw timings were not kept with this report"
        elif uri := _attempt(problems, key, plots.latency_histogram, lat.times_ms,
                             {"p50": lat.p50_ms, "p90": lat.p90_ms, "p99": lat.p99_ms}):
            latency[lat.runtime] = uri
    size = None
    if report.size is not None:
        s = report.size
        size = _attempt(problems, "size", plots.size_bars,
                        {"fp32 reference": s.fp32_bytes, "artifact": s.artifact_bytes, "artifact, gzip": s.gzip_bytes})
    return Figures(outputs, latency, size, problems, files)


def _attempt(problems: dict[str, str], key: str, draw: Callable[..., Any], *args: Any) -> str | None:
    """One plot's data: URI, or None with the reason in ``problems[key]``: a plot that cannot be
    drawn is a note on the page, never the export's failure (report.json holds the verdict)."""
    try:
        got = draw(*args)
    except Exception as exc:  # noqa: BLE001  (the note names it)
        got = None, f"could not be drawn: {type(exc).__name__}: {one_line(exc)}"
    uri, problem = got if isinstance(got, tuple) else (got, None)
    if uri is None:
        problems[key] = problem or "no plot"
    return uri


def write_report_html(bundle: Path, report: "Report", golden: "Golden", files: Sequence[str] = ()) -> Path:
    """Write ``bundle/report.html``: the report, with per-output error plots (the artifact's outputs
    against the reference the parity check used), latency histograms and the size breakdown."""
    reference = golden.converted_reference if golden.converted_reference is not None else golden.reference
    sizes = [(rel, (bundle / rel).stat().st_size) for rel in files if (bundle / rel).is_file()]
    text = render_report(report.to_dict(), _draw(report, reference, sizes))
    path = bundle / REPORT_HTML
    path.write_text(text, encoding="utf-8")
    return path


class _Result(Protocol):
    target: str
    bundle: Path | None
    report: "Report | None"
    error: Any
    log: Path | None


def write_index_html(out_dir: Path, model: str, results: Sequence[_Result]) -> Path:
    """Write ``out_dir/index.html``: one row per target (an export result), linking each bundle's
    report.html, or the error and log of a target that could not be produced. Replaced in one
    step, so a reader never sees half a page."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for res in results:
        rel = (lambda p: os.path.relpath(p, out_dir) if p is not None else None)
        log = rel(res.log) if res.log is not None and Path(res.log).is_file() else None
        rows.append(IndexRow(res.target, res.report.to_dict() if res.report is not None else None,
                             rel(res.bundle), None if res.error is None else one_line(res.error, 600), log))
    path = out_dir / INDEX_HTML
    tmp = out_dir / f".{INDEX_HTML}.{os.getpid()}.tmp"
    tmp.write_text(render_index(model, rows), encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["INDEX_HTML", "REPORT_HTML", "write_index_html", "write_report_html"]
