"""Run every zoo model x target x precision through the edgeport CLI, one cell at a time.

    python tests/zoo/run_matrix.py [--models a,b] [--targets t1,t2] [--precisions fp32,fp16,int8]
                                   [--timeout 600] [--out tests/zoo/matrix.json] [--keep DIR]

Each cell is ``edgeport export tests/zoo/models.py:MODEL --target T --precision P --json -o DIR``
as a subprocess (sequential, never in parallel), with a per-cell timeout. Per cell it records
the exit code, ``passed``, the worst cosine / SQNR per output, top-1 agreement, the failing checks
(or the error line from stderr), and the wall time. Results are merged into ``matrix.json``
(cells already there are kept unless re-run) and printed as a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

TARGETS = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")
#: per target: the precisions of the matrix (fp32, fp16, the target's int8 flavour)
PRECISIONS = {"local-onnx": ("fp32", "fp16", "int8"), "android-tflite": ("fp32", "fp16", "int8"),
              "ios-coreml": ("fp32", "fp16", "int8"), "browser-tfjs": ("fp32", "fp16", "int8")}


def _edgeport() -> list[str]:
    exe = Path(sys.executable).with_name("edgeport")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeport"]


def _error_line(stderr: str, rc: int) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("edgeport: error") or "Error" in ln or "error:" in ln:
            return ln[:400]
    if rc < 0:
        return f"killed by signal {signal.Signals(-rc).name}"
    return (lines[-1][:400] if lines else f"exit {rc}, no output")


def _summarize(doc: dict) -> dict:
    parity = doc.get("parity") or {}
    outs = {o["name"]: {"cosine_min": round(o["cosine_min"], 6), "cosine": round(o["cosine"], 6),
                        "sqnr_db": o["sqnr_db"], "max_abs_rel": round(o["max_abs_rel"], 5)}
            for o in parity.get("outputs", [])}
    failing = [f"{c['name']}: {c['detail']}" for c in doc.get("checks", []) if not c.get("passed")]
    extra = {}
    for r in doc.get("runtimes") or []:
        p = r.get("parity") or {}
        extra[r["runtime"]] = {"error": r.get("error"), "top1_agreement": p.get("top1_agreement"),
                               "worst_cosine": min((o["cosine_min"] for o in p.get("outputs", [])), default=None)}
    size = doc.get("size") or {}
    return {"passed": bool(doc.get("passed")), "outputs": outs, "top1_agreement": parity.get("top1_agreement"),
            "failing": failing, "extra_runtimes": extra,
            "size_ratio": (round(size["artifact_bytes"] / size["fp32_bytes"], 3)
                           if size.get("fp32_bytes") else None),
            "precision_facts": doc.get("precision_facts")}


def run_cell(model: str, target: str, precision: str, timeout: float, out_root: Path) -> dict:
    out = out_root / f"{model}-{target}-{precision}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = _edgeport() + ["export", f"{HERE / 'models.py'}:{model}", "--target", target,
                         "--precision", precision, "--json", "-o", str(out)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
                           start_new_session=True)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout = None, exc.stdout or ""
        stderr = (exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr) or ""
    secs = round(time.perf_counter() - t0, 1)
    cell = {"model": model, "target": target, "precision": precision, "exit": rc, "seconds": secs,
            "bundle": f"{out.name}/{model}-{target}"}
    if rc is None:
        return dict(cell, status="timeout", passed=False, error=f"timeout after {timeout:.0f} s")
    try:
        doc = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, list):
        doc = doc[0]
    if doc is None:
        status = "crash" if rc < 0 else "error"
        return dict(cell, status=status, passed=False, error=_error_line(stderr, rc))
    if doc.get("error") and not doc.get("parity"):       # the target could not be produced
        return dict(cell, status="error", passed=False, error=str(doc["error"])[:600])
    s = _summarize(doc)
    return dict(cell, status="pass" if s["passed"] and rc == 0 else "fail", **s)


def _fmt_cell(c: dict | None) -> str:
    if c is None:
        return "—"
    if c["status"] == "pass":
        ag = c.get("top1_agreement")
        cos = min((o["cosine_min"] for o in c["outputs"].values()), default=None)
        return "pass" + (f" ag {ag:.3f}" if ag is not None else (f" cos {cos:.4f}" if cos is not None else ""))
    if c["status"] == "fail":
        ag = c.get("top1_agreement")
        names = sorted({f.split(":")[0] for f in c["failing"]})
        return "FAIL " + "/".join(names) + (f" ag {ag:.3f}" if ag is not None else "")
    return c["status"].upper()


def table(cells: list[dict], models: list[str]) -> str:
    idx = {(c["model"], c["target"], c["precision"]): c for c in cells}
    cols = [(t, p) for t in TARGETS for p in PRECISIONS[t]]
    lines = ["| model | " + " | ".join(f"{t.split('-')[1] if '-' in t else t} {p}" for t, p in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt_cell(idx.get((m, t, p))) for t, p in cols) + " |")
    counts = []
    for t in TARGETS:
        got = [c for c in cells if c["target"] == t and c["model"] in models]
        counts.append(f"{t}: {sum(c['status'] == 'pass' for c in got)}/{len(got)} pass")
    return "\n".join(lines) + "\n\n" + "; ".join(counts)


def main() -> int:
    import models as zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(zoo.ZOO))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", default=str(HERE / "matrix.json"))
    ap.add_argument("--keep", help="keep the bundles in this folder (default: a temp folder, removed)")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--cells", help="explicit cells MODEL:TARGET:PRECISION,... (instead of the full product)")
    args = ap.parse_args()
    models = args.models.split(",")
    out_path = Path(args.out)
    doc = json.loads(out_path.read_text()) if out_path.exists() else {"cells": []}
    cells = {(c["model"], c["target"], c["precision"]): c for c in doc["cells"]}
    if not args.table_only:
        root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="edgeport-zoo-"))
        root.mkdir(parents=True, exist_ok=True)
        try:
            todo = ([tuple(c.split(":")) for c in args.cells.split(",")] if args.cells else
                    [(m, t, p) for p in args.precisions.split(",")        # fp32 everywhere first
                     for t in args.targets.split(",") if p in PRECISIONS[t] for m in models])
            for model, target, prec in todo:
                if True:
                    if True:
                        print(f"[zoo] {model} {target} {prec} ...", file=sys.stderr, flush=True)
                        c = run_cell(model, target, prec, args.timeout, root)
                        print(f"[zoo]   -> {c['status']} exit {c['exit']} {c['seconds']} s "
                              f"{c.get('error') or '; '.join(c.get('failing', []))[:300]}", file=sys.stderr, flush=True)
                        cells[(model, target, prec)] = c
                        doc["cells"] = sorted(cells.values(), key=lambda c: (models.index(c["model"])
                                              if c["model"] in models else 99, c["target"], c["precision"]))
                        out_path.write_text(json.dumps(doc, indent=1) + "\n")
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    print(table(list(cells.values()), [m for m in zoo.ZOO if any(k[0] == m for k in cells)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
