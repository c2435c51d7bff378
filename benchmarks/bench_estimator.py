"""How wrong the device latency estimator has been: every published CPU row predicted by a fit
that never saw it — leave-one-model-out (grade B) and leave-one-device-out (grade C) — with the
median error, the shares within ±25 % / ±50 %, the coverage of the stated 80 % intervals, one
line per device, and a predicted-vs-published plot (SVG, no plotting library needed).

    .venv/bin/python benchmarks/bench_estimator.py [--host]   # --host: this machine's measured ratios
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from _common import RESULTS, print_table, write_json

from edgeport.validation.estimate.fit import fitted
from edgeport.validation.estimate.host import HostTransfer, measure_host


def svg(points: list[tuple[float, float, str]], path: Path) -> None:
    """Log-log scatter of (published, predicted, grade) with the ±25 % band."""
    lo, hi = math.log10(2), math.log10(800)
    size, pad = 420, 40

    def xy(v: float) -> float:
        return pad + (math.log10(v) - lo) / (hi - lo) * (size - 2 * pad)

    colour = {"B": "#1f77b4", "C": "#d62728"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" font-size="11">',
             f'<rect width="{size}" height="{size}" fill="white"/>']
    for f, dash in ((1.0, ""), (1.25, ' stroke-dasharray="4 3"'), (0.8, ' stroke-dasharray="4 3"')):
        parts.append(f'<line x1="{xy(2)}" y1="{size - xy(2 * f)}" x2="{xy(800)}" y2="{size - xy(800 * f)}" '
                     f'stroke="#999"{dash}/>')
    for tick in (3, 10, 30, 100, 300):
        parts.append(f'<text x="{xy(tick) - 6}" y="{size - 10}">{tick}</text>')
        parts.append(f'<text x="4" y="{size - xy(tick) + 4}">{tick}</text>')
    for pub, pred, grade in points:
        parts.append(f'<circle cx="{xy(pub):.1f}" cy="{size - xy(pred):.1f}" r="3.5" fill="{colour[grade]}" '
                     'fill-opacity="0.7"/>')
    parts.append(f'<text x="{pad}" y="16">predicted vs published ms (blue: B leave-one-model-out, '
                 'red: C leave-one-device-out; dashed ±25 %)</text></svg>')
    path.write_text("\n".join(parts))


def main() -> None:
    host = measure_host() if "--host" in sys.argv else HostTransfer()
    fit = fitted(host)
    print(f"host ratios: {host.where}\n")
    rows = []
    for grade, how in (("B", "leave-one-model-out"), ("C", "leave-one-device-out")):
        devices = sorted({h.row.device for h in fit.held_out if h.grade == grade})
        for device in [None, *devices]:
            s = fit.stats(grade, device)
            rows.append({"grade": grade, "held out": how, "device": device or "all", **s})
    cols = ["grade", "held out", "device", "rows", "median_abs_error", "within_25", "within_50",
            "interval_coverage", "worst"]
    print_table(rows, cols)
    print()
    detail = [{"grade": h.grade, "model": h.row.model, "device": h.row.device, "precision": h.row.precision,
               "published_ms": h.row.ms, "predicted_ms": round(h.predicted_ms, 2),
               "ratio": round(h.row.ms / h.predicted_ms, 3)} for h in fit.held_out]
    print_table(detail, ["grade", "model", "device", "precision", "published_ms", "predicted_ms", "ratio"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    svg([(h.row.ms, h.predicted_ms, h.grade) for h in fit.held_out], RESULTS / "estimator.svg")
    write_json("estimator", {"host": host.to_dict(), "summary": rows, "held_out": detail,
                             "intervals": {"B": fit.interval("B"), "C": fit.interval("C")}})


if __name__ == "__main__":
    main()
