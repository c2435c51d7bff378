"""``edgeport sweep``: every candidate of each target judged in the target's runtime, as a table,
``sweep.json``, plots and an HTML page.

The grid is the ``--precision auto`` search's (see :mod:`edgeport.search`): the target's
precisions, and with train data each of them under channel pruning recovered by distillation; the
same selection split judges them all, and the auto pick is bundled and judged on the held-out
rest as usual. A sweep adds the Pareto fronts: size against accuracy loss and p50 against accuracy
loss, per target.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .search import Auto

SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"


@dataclass(frozen=True)
class SweepResult:
    doc: dict[str, Any]
    files: tuple[Path, ...]
    results: tuple[Any, ...]


def loss(row: Mapping[str, Any]) -> float | None:
    """A candidate's task loss for the plots: its accuracy drop in points when labels judged it,
    else its top-1 disagreement, else 1 - worst cosine (as points)."""
    if row.get("drop") is not None:
        return round(100 * row["drop"], 4)
    if row.get("agreement") is not None:
        return round(100 * (1 - row["agreement"]), 4)
    if row.get("worst_cosine") is not None:
        return round(100 * (1 - row["worst_cosine"]), 4)
    return None


def pareto(rows: Sequence[Mapping[str, Any]], cost: str) -> list[int]:
    """Indices of the candidates no other beats on both ``cost`` (``bytes`` or ``p50``) and loss."""
    def c(r: Mapping[str, Any]) -> float | None:
        return r.get("bytes") if cost == "bytes" else next(iter((r.get("p50_ms") or {}).values()), None)

    pts = [(i, c(r), loss(r)) for i, r in enumerate(rows) if c(r) is not None and loss(r) is not None]
    front = []
    for i, x, y in pts:
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for _, x2, y2 in pts):
            front.append(i)
    return sorted(front, key=lambda i: c(rows[i]))


def sweep(model: Any, targets: Sequence[str], *, data: Any = None, train_data: Any = None,
          out_dir: str | Path = "out", auto: Auto | None = None, progress: Any = None) -> SweepResult:
    """Judge every candidate of every target, bundle each target's pick, write the sweep files."""
    from .pipeline import export
    from .validation.render_sweep import write_plots, write_page

    out = Path(out_dir)
    if auto is None:
        auto = Auto(compress=has_train_data(model, train_data))
    results = export(model, targets, precision=auto, data=data, train_data=train_data, out_dir=out,
                     progress=progress)
    per_target = []
    for r in results:
        if r.report is None or r.report.auto is None:
            per_target.append({"target": r.target, "error": str(r.error)})
            continue
        block = dict(r.report.auto)
        rows = [dict(c, loss_pt=loss(c)) for c in block["candidates"]]
        per_target.append({"target": r.target, "format": r.report.format, "runtime": r.report.runtime,
                           "objective": block["objective"], "pick": block["pick"], "candidates": rows,
                           "untried": block.get("untried", []), "pareto_size": pareto(rows, "bytes"),
                           "pareto_latency": pareto(rows, "p50"), "bundle": str(r.bundle),
                           "judged_pick": {"passed": r.report.passed, "ratio": r.report.size.ratio,
                                           "samples": r.report.parity.samples}})
    doc = {"model": results[0].report.model if results and results[0].report else str(model),
           "loss_unit": "points of accuracy drop (else of top-1 disagreement, else 100 x (1 - worst cosine))",
           "targets": per_target}
    out.mkdir(parents=True, exist_ok=True)
    (out / SWEEP_JSON).write_text(json.dumps(doc, indent=2, allow_nan=False))
    plots = write_plots(doc, out)
    page = write_page(doc, plots, out / SWEEP_HTML)
    return SweepResult(doc, (out / SWEEP_JSON, *plots, page), tuple(results))


def has_train_data(model: Any, train_data: Any) -> bool:
    """Whether compression candidates can be distilled: train data given, or a sample that has its own."""
    if train_data is not None:
        return True
    if isinstance(model, str):
        return model in ("sample:digits_cnn", "sample:text_transformer")
    return getattr(model, "train_data", None) is not None


def table(doc: Mapping[str, Any]) -> str:
    """The sweep as text: one line per candidate, the Pareto members and the pick marked."""
    lines = []
    for t in doc["targets"]:
        if "error" in t:
            lines.append(f"{t['target']}: ERROR {t['error']}")
            continue
        lines.append(f"{t['target']} ({t['objective']}; * pick, s/l on the size/latency front)")
        for i, c in enumerate(t["candidates"]):
            p50 = next(iter((c.get("p50_ms") or {}).values()), None)
            marks = ("*" if c["label"] == t["pick"] else " ") + ("s" if i in t["pareto_size"] else " ") + \
                ("l" if i in t["pareto_latency"] else " ")
            size = f"{c['bytes'] / 1024:9.1f} KB" if c.get("bytes") else "        - KB"
            p = f"{p50:8.3f} ms" if p50 is not None else "       - ms"
            lp = f"{c['loss_pt']:+7.2f} pt" if c.get("loss_pt") is not None else "      - pt"
            lines.append(f"  {marks} {c['label']:<30} {size} {p} {lp}  {'fits' if c['passed'] else 'no'}")
    return "\n".join(lines)
