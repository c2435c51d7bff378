"""TFLite benchmark: edgeport's exporter beside what a user would try by hand, same models, same run.

By-hand paths:
  * ``litert-torch``: ``litert_torch.convert(module, example_args).export(path)`` with defaults.
  * ``tf-optimize-default``: TensorFlow's ``TFLiteConverter`` on the (onnx2tf) SavedModel with
    ``optimizations=[Optimize.DEFAULT]`` and nothing else (dynamic-range int8 weights).

For every artifact: conversion time, size, whether it loads and runs, top-1 agreement with the
torch model and accuracy on the eval split, p50 latency at 1 thread (XNNPACK). Prints a table and
writes ``benchmarks/results/tflite.json``.

    python benchmarks/bench_tflite.py [--models digits_cnn,text_transformer] [--real]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "tflite.json"


def measure(src: Any, path: Path, runs: int) -> dict[str, Any]:
    """Load ``path`` in LiteRT and compare it with the torch model on the eval split."""
    from edgeport.validation.runtimes import get_runtime

    data = src.eval_data
    out_name = src.output_names[0]
    try:
        sess = get_runtime("litert").load(path, threads=1)
        # by-hand files may name inputs/outputs differently: feed and read by position
        feeds_names = [s.name for s in sess.input_specs]
        outs = []
        for i in range(len(data)):
            sample = data.sample(i)
            res = sess.run({n: sample[k] for n, k in zip(feeds_names, src.input_names)})
            outs.append(res[out_name] if out_name in res else res[sess.output_names[0]])
        out = np.concatenate(outs)
        first = data.sample(0)
        timing = sess.time({n: first[k] for n, k in zip(feeds_names, src.input_names)}, warmup=20, runs=runs)
    except Exception as exc:  # a by-hand artifact that does not run is a result, not a crash
        return {"runs": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    ref = src.reference(data)[out_name]
    row = {"runs": True, "agreement": round(float((out.argmax(-1) == ref.argmax(-1)).mean()), 4),
           "p50_ms": round(float(np.median(timing.times_ms)), 4),
           "input_dtypes": ",".join(s.dtype for s in sess.input_specs)}
    if data.labels is not None:
        row["accuracy"] = round(float((out.argmax(-1) == data.labels).mean()), 4)
        row["reference_accuracy"] = round(float((ref.argmax(-1) == data.labels).mean()), 4)
    return row


def timed(fn: Callable[[], Path]) -> tuple[Path | None, float, str | None]:
    t0 = time.perf_counter()
    try:
        path = fn()
        return path, time.perf_counter() - t0, None
    except Exception as exc:
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def ours(src: Any, precision: str, work: Path) -> Path:
    from edgeport.exporters import get_exporter
    from edgeport.exporters.base import ExportJob
    from edgeport.progress import SILENT
    from edgeport.targets.profile import load_profile, resolve_plan

    plan = resolve_plan(load_profile("android-tflite"), precision=precision)
    job = ExportJob(source=src, module=src.module, plan=plan, calibration=src.calibration_data or src.eval_data,
                    progress=SILENT, workdir=work / f"w-{precision}")
    return get_exporter("tflite").export(job, work / f"ours-{precision}").path


def by_hand_litert_torch(src: Any, work: Path) -> Path:
    import litert_torch
    import torch

    args = tuple(torch.from_numpy(x) for x in src.example_inputs)
    path = work / "litert-torch.tflite"
    litert_torch.convert(src.module.eval(), args).export(str(path))
    return path


def by_hand_tf_default(src: Any, work: Path) -> Path:
    from edgeport.exporters._onnx2tf_env import onnx_to_saved_model
    from edgeport.exporters.torch_to_onnx import torch_to_onnx
    import tensorflow as tf

    onnx_path = torch_to_onnx(src.module, src.example_inputs, src.input_names, src.output_names,
                              work / "by-hand.onnx")
    sm = onnx_to_saved_model(onnx_path, work / "by-hand-sm")
    conv = tf.lite.TFLiteConverter.from_saved_model(str(sm))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    path = work / "tf-optimize-default.tflite"
    path.write_bytes(conv.convert())
    return path


def bench_model(name: str, runs: int) -> list[dict[str, Any]]:
    from edgeport.sample_models import load_sample

    src = load_sample(name)
    work = Path(tempfile.mkdtemp(prefix=f"bench-tflite-{name}-"))
    rows = []
    try:
        candidates: list[tuple[str, str, Callable[[], Path]]] = [
            (f"edgeport {p}", p, (lambda p=p: ours(src, p, work))) for p in ("fp32", "fp16", "int8-dynamic", "int8")]
        candidates += [("by hand: litert-torch convert()", "fp32", lambda: by_hand_litert_torch(src, work)),
                       ("by hand: TFLiteConverter Optimize.DEFAULT", "int8-dynamic",
                        lambda: by_hand_tf_default(src, work))]
        fp32_bytes = None
        for label, precision, fn in candidates:
            path, secs, err = timed(fn)
            row: dict[str, Any] = {"model": name, "path": label, "precision": precision,
                                   "convert_s": round(secs, 2)}
            if path is None:
                row.update(runs=False, error=err)
            else:
                row["bytes"] = path.stat().st_size
                fp32_bytes = fp32_bytes or (row["bytes"] if label == "edgeport fp32" else None)
                row["size_ratio"] = round(row["bytes"] / fp32_bytes, 3) if fp32_bytes else None
                row.update(measure(src, path, runs))
            rows.append(row)
            print(_fmt(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _fmt(r: dict[str, Any]) -> str:
    if not r.get("runs"):
        return f"{r['model']:17s} {r['path']:42s} {r['convert_s']:7.1f}s  FAILS: {r.get('error')}"
    acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "   -  "
    return (f"{r['model']:17s} {r['path']:42s} {r['convert_s']:7.1f}s {r['bytes']:>10,d} "
            f"{r['size_ratio'] if r['size_ratio'] is not None else '-':>6} {r['agreement']:.4f} {acc} "
            f"{r['p50_ms']:8.4f} {r['input_dtypes']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits_cnn,text_transformer")
    ap.add_argument("--real", action="store_true", help="add efficientnet_lite0 (slow)")
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m] + (["efficientnet_lite0"] if args.real else [])
    print(f"{'model':17s} {'path':42s} {'convert':>8s} {'bytes':>10s} {'ratio':>6s} {'agree':6s} "
          f"{'acc':6s} {'p50 ms':>8s} inputs")
    rows = []
    for m in models:
        rows += bench_model(m, args.runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    RESULTS.write_text(json.dumps({
        "host": {"machine": platform.machine(), "python": platform.python_version(), "threads": 1,
                 "ai_edge_litert": version("ai-edge-litert"), "tensorflow": version("tensorflow"),
                 "litert_torch": version("litert-torch"), "onnx2tf": version("onnx2tf")},
        "latency": "p50 of runs on one input after 20 warm-up runs, LiteRT XNNPACK, 1 thread",
        "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
