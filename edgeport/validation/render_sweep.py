"""The sweep's plots (matplotlib, headless) and its self-contained HTML page."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Mapping, Sequence


def _p50(row: Mapping[str, Any]) -> float | None:
    return next(iter((row.get("p50_ms") or {}).values()), None)


def write_plots(doc: Mapping[str, Any], out: Path) -> list[Path]:
    """One PNG per target: size × loss and p50 × loss, the Pareto front joined, the pick starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for t in doc["targets"]:
        if "error" in t:
            continue
        rows = t["candidates"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
        for ax, (key, front, xlabel) in zip(axes, (("bytes", t["pareto_size"], "artifact KB"),
                                                   ("p50", t["pareto_latency"], f"p50 ms ({t['runtime']})"))):
            def x(r: Mapping[str, Any]) -> float | None:
                return r["bytes"] / 1024 if key == "bytes" and r.get("bytes") else (_p50(r) if key == "p50" else None)

            pts = [(x(r), r.get("loss_pt"), r) for r in rows if x(r) is not None and r.get("loss_pt") is not None]
            for xv, yv, r in pts:
                ax.scatter(xv, yv, c="tab:green" if r["passed"] else "tab:red", s=36, zorder=3)
                ax.annotate(r["label"], (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
            fr = [(x(rows[i]), rows[i]["loss_pt"]) for i in front if x(rows[i]) is not None]
            if fr:
                ax.plot([a for a, _ in fr], [b for _, b in fr], "--", c="tab:blue", label="Pareto front", zorder=2)
            picked = [(xv, yv) for xv, yv, r in pts if r["label"] == t["pick"]]
            if picked:
                ax.scatter(*zip(*picked), marker="*", s=260, c="gold", edgecolors="black", zorder=4, label="pick")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("loss (points)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
        fig.suptitle(f"{doc['model']} → {t['target']} (green: fits the budget, red: does not)", fontsize=10)
        fig.tight_layout()
        path = out / f"sweep-{t['target']}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_page(doc: Mapping[str, Any], plots: Sequence[Path], path: Path) -> Path:
    """sweep.html: the table per target and the plots inlined (no network)."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>sweep {e(str(doc['model']))}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.pick{background:#fff3b0}"
             ".no{color:#a00}</style></head><body>",
             f"<h1>Sweep: {e(str(doc['model']))}</h1><p>loss: {e(doc['loss_unit'])}</p>"]
    images = {p.stem.removeprefix("sweep-"): p for p in plots}
    for t in doc["targets"]:
        parts.append(f"<h2>{e(t['target'])}</h2>")
        if "error" in t:
            parts.append(f"<p class='no'>not produced: {e(t['error'])}</p>")
            continue
        parts.append(f"<p>objective {e(t['objective'])}; pick <code>{e(t['pick'])}</code>, bundled at "
                     f"{e(t['bundle'])}</p><table><tr><th>candidate</th><th>KB</th><th>p50 ms</th>"
                     "<th>loss pt</th><th>fits</th><th>why not</th></tr>")
        for c in t["candidates"]:
            p50 = _p50(c)
            cells = [e(c["label"]), f"{c['bytes'] / 1024:.1f}" if c.get("bytes") else "-",
                     "-" if p50 is None else f"{p50:.3f}", "-" if c.get("loss_pt") is None else f"{c['loss_pt']:.2f}",
                     "yes" if c["passed"] else "no", e(str(c.get("why") or ""))]
            css = " class='pick'" if c["label"] == t["pick"] else ""
            parts.append(f"<tr{css}>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
        parts.append("</table>")
        if t["target"] in images:
            data = base64.b64encode(images[t["target"]].read_bytes()).decode()
            parts.append(f"<p><img alt='{e(t['target'])} sweep' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")
    return path
