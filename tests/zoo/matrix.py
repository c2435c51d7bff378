"""The layer-zoo matrix: every zoo model x target x {fp32, fp16, the target's int8}, run in one
process through the public API (``edgeport.export``), as a user scripting a comparison would.

Each target runs under its built-in profile with fewer latency runs (``matrix_profile``): the
matrix proves conversion and parity; latency figures come from ``benchmarks/``. Each model's
cells share one ``cache_dir``, so its ONNX file and TensorFlow SavedModel are made
once for all of its cells. A cell's outcome is one of:

- ``pass``: the bundle was written and every check passed;
- ``fail``: the bundle was written, some check failed (the names are kept);
- ``refused``: the target could not be produced; the error line is kept.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

TARGETS = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class Cell:
    model: str
    target: str
    precision: str
    outcome: str  # pass | fail | refused
    seconds: float
    error: str = ""
    failing: list[str] = field(default_factory=list)
    top1_agreement: float | None = None
    worst_cosine: float | None = None
    worst_sqnr_db: float | None = None
    size_ratio: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


#: latency runs per cell: enough to show the runtime runs the model, cheap enough for 132 cells
MATRIX_LATENCY = {"warmup": 1, "runs": 5}


def matrix_profile(target: str, folder: Path) -> Path:
    """The target's built-in profile, written to ``folder`` with :data:`MATRIX_LATENCY`."""
    import edgeport.targets as targets

    text = (Path(targets.__file__).parent / "profiles" / f"{target}.toml").read_text()
    for key, value in MATRIX_LATENCY.items():
        text, n = re.subn(rf"(?m)^{key} = \d+$", f"{key} = {value}", text)
        assert n == 1, f"{target}.toml: no single '{key} =' line"
    path = folder / f"{target}.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@functools.lru_cache(maxsize=None)
def zoo_source(model: str):
    """The zoo model's ModelSource, built (and trained, or read from the weight cache) once."""
    import models as zoo

    return getattr(zoo, model)()


def run_cell(model: str, target: str, precision: str, out_root: Path, cache_dir: Path) -> Cell:
    import edgeport

    t0 = time.perf_counter()
    profile = matrix_profile(target, out_root / "profiles")
    with edgeport.conversion_cache(cache_dir):
        (result,) = edgeport.export(zoo_source(model), [str(profile)], precision=precision,
                                    out_dir=out_root / f"{model}-{precision}")
    secs = round(time.perf_counter() - t0, 1)
    if result.report is None:
        return Cell(model, target, precision, "refused", secs, error=str(result.error))
    rep = result.report.to_dict()
    outs = (rep.get("parity") or {}).get("outputs") or []
    size = rep.get("size") or {}
    failing = [c["name"] for c in rep["checks"] if not c["passed"]]
    return Cell(model, target, precision, "pass" if result.passed else "fail", secs,
                failing=failing,
                top1_agreement=(rep.get("parity") or {}).get("top1_agreement"),
                worst_cosine=min((o["cosine_min"] for o in outs), default=None),
                worst_sqnr_db=min((o["sqnr_db"] for o in outs if o.get("sqnr_db") is not None), default=None),
                size_ratio=size.get("ratio"))


def _short(c: dict | None) -> str:
    if c is None:
        return "—"
    if c["outcome"] == "pass":
        ag = c.get("top1_agreement")
        return "pass" + (f" {ag:.2f}" if ag is not None else (f" {c['worst_sqnr_db']:.0f} dB"
                                                               if c.get("worst_sqnr_db") is not None else ""))
    if c["outcome"] == "fail":
        return "fail: " + ", ".join(c["failing"])
    return "refused"


def table(cells: list[dict], models: list[str]) -> str:
    """A markdown table (model rows; target x precision columns) and pass counts per target."""
    idx = {(c["model"], c["target"], c["precision"]): c for c in cells}
    cols = [(t, p) for t in TARGETS for p in PRECISIONS]
    lines = ["| model | " + " | ".join(f"{t} {p}" for t, p in cols) + " |", "|---|" + "---|" * len(cols)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_short(idx.get((m, t, p))) for t, p in cols) + " |")
    lines.append("")
    for t in TARGETS:
        got = [c for c in cells if c["target"] == t]
        if not got:
            continue
        float_cells = [c for c in got if c["precision"] != "int8"]
        lines.append(f"- {t}: {sum(c['outcome'] == 'pass' for c in got)}/{len(got)} pass "
                     f"(fp32/fp16 {sum(c['outcome'] == 'pass' for c in float_cells)}/{len(float_cells)}), "
                     f"{sum(c['outcome'] == 'refused' for c in got)} refused, "
                     f"{sum(c['outcome'] == 'fail' for c in got)} fail a check")
    return "\n".join(lines)
