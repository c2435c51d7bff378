"""Compression: method x level x recovery on the trained samples, exported through edgeport to
local-onnx and android-tflite (fp32; int8 on top for one), in one run.

    python benchmarks/bench_compression.py [--quick] [--recover-time S]

Each row: params and multiply-accumulates (the steps' own counts), artifact bytes, p50 at batch 1
on one thread in onnxruntime and LiteRT/XNNPACK — every artifact timed in the same run,
interleaved round by round, as a ratio to the dense model's — and accuracy on the eval split
(the split recovery never trains on).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

#: (label, CompressionRequest fields, train labels kept) per sample
DIGITS = [
    ("dense", {}, True),
    ("channels 0.5 /16, no recovery", {"prune_channels": 0.5, "channel_multiple": 16}, True),
    ("channels 0.5 /16, finetune", {"prune_channels": 0.5, "channel_multiple": 16, "recover": "finetune"}, True),
    ("channels 0.5 /16, kd", {"prune_channels": 0.5, "channel_multiple": 16, "recover": "kd"}, True),
    ("channels 0.5 /16, kd no labels", {"prune_channels": 0.5, "channel_multiple": 16, "recover": "kd"}, False),
    ("channels 0.5 /8, kd", {"prune_channels": 0.5, "channel_multiple": 8, "recover": "kd"}, True),
    ("channels 0.5 /4, kd", {"prune_channels": 0.5, "channel_multiple": 4, "recover": "kd"}, True),
    ("channels 0.5 /1, kd", {"prune_channels": 0.5, "channel_multiple": 1, "recover": "kd"}, True),
    ("magnitude 0.5, BatchNorm only", {"sparsity": 0.5}, True),
    ("magnitude 0.5, kd", {"sparsity": 0.5, "recover": "kd"}, True),
    ("magnitude 0.5, kd no labels", {"sparsity": 0.5, "recover": "kd"}, False),
    ("magnitude 0.7 gradual, kd", {"sparsity": 0.7, "pruning_schedule": "gradual", "recover": "kd"}, True),
    ("low-rank 0.9, kd", {"low_rank": 0.9, "recover": "kd"}, True),
]
TEXT = [
    ("dense", {}, True),
    ("channels 0.5 /16, kd", {"prune_channels": 0.5, "channel_multiple": 16, "recover": "kd"}, True),
    ("channels 0.75 /16, kd", {"prune_channels": 0.75, "channel_multiple": 16, "recover": "kd"}, True),
    ("channels 0.5 /16, kd 100 epochs", {"prune_channels": 0.5, "channel_multiple": 16, "recover": "kd",
                                          "recover_epochs": 100}, True),
    ("channels 0.6 /16, kd 100 epochs", {"prune_channels": 0.6, "channel_multiple": 16, "recover": "kd",
                                          "recover_epochs": 100}, True),
    ("low-rank 0.9, kd", {"low_rank": 0.9, "recover": "kd"}, True),
    ("low-rank 0.7, kd", {"low_rank": 0.7, "recover": "kd"}, True),
]
QUICK = {"dense", "channels 0.5 /16, kd", "magnitude 0.5, kd", "low-rank 0.9, kd"}
ROUNDS, PER_ROUND = 15, 40


def _export(source, label, fields, keep_labels, precision, targets, out, recover_time):
    from edgeport.compression.request import CompressionRequest
    from edgeport.data import Dataset
    from edgeport.pipeline import export

    if "recover" in fields:
        fields = {**fields, "recover_time": recover_time}
    train = source.training_data()
    if not keep_labels:
        train = Dataset(dict(train.inputs), None, train.description + ", labels dropped")
    t0 = time.perf_counter()
    results = export(source, targets, precision=precision, compression=CompressionRequest(**fields),
                     train_data=train, out_dir=out / f"{source.name}-{len(list(out.iterdir()))}")
    seconds = time.perf_counter() - t0
    for r in results:
        if r.report is None:
            raise SystemExit(f"{source.name} {label} {r.target}: {r.error}")
    return results, seconds


def _row(source, label, results, seconds, dense_acc):
    rep = results[0].report
    comp = rep.compression.to_dict() if rep.compression else {"steps": []}
    structural = [s for s in comp["steps"] if s.get("params_before")]
    first = comp["steps"][0] if comp["steps"] else {}
    last = structural[-1] if structural else {}
    recovery = comp.get("recovery") or {}
    acc = rep.accuracy.artifact if rep.accuracy else None
    row = {"model": source.name, "compression": label, "precision": rep.precision,
           "params": last.get("params_after") or first.get("total_params"),
           "macs": last.get("macs_after"),
           "recovery_s": recovery.get("seconds"), "accuracy": acc,
           "drop_pt": round((dense_acc - acc) * 100, 2) if acc is not None and dense_acc is not None else None,
           "export_s": round(seconds, 1)}
    for r in results:
        key = "onnx" if r.target == "local-onnx" else "tflite"
        row[f"{key}_kb"] = round(r.report.size.artifact_bytes / 1024, 1)
        row[f"_{key}_path"] = str(r.bundle / r.report.to_dict()["precision_facts"].get("entry", ""))
        row[f"_{key}_bundle"] = r.bundle
        if key == "onnx" and rep.compression:
            row["onnx_gzip_kb"] = round(r.report.size.gzip_bytes / 1024, 1)
    return row


def _sessions(row, feed):
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    calls = {}
    onnx = Path(row["_onnx_bundle"]) / "model.onnx"
    if onnx.is_file():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        calls["onnx"] = (lambda s=sess, f=dict(zip(names, feed.values())): s.run(None, f))
    tfl = Path(row.get("_tflite_bundle", "")) / "model.tflite"
    if tfl.is_file():
        it = Interpreter(model_path=str(tfl), num_threads=1)
        it.allocate_tensors()
        details = it.get_input_details()
        for d, v in zip(details, feed.values()):
            it.set_tensor(d["index"], v.astype(d["dtype"]))
        calls["tflite"] = it.invoke
    return calls


def _time_interleaved(rows, feed):
    """p50 per row and runtime, every artifact timed round by round so drift hits all alike."""
    sessions = [_sessions(r, feed) for r in rows]
    times = [{k: [] for k in s} for s in sessions]
    for s in sessions:
        for fn in s.values():
            for _ in range(20):
                fn()
    for _ in range(ROUNDS):
        for s, t in zip(sessions, times):
            for key, fn in s.items():
                t0 = time.perf_counter()
                for _ in range(PER_ROUND):
                    fn()
                t[key].append((time.perf_counter() - t0) / PER_ROUND * 1e3)
    for r, t in zip(rows, times):
        for key, values in t.items():
            r[f"{key}_p50_ms"] = round(float(np.median(values)), 4)


def bench(source, configs, recover_time, work):
    rows, dense_acc = [], None
    for label, fields, keep in configs:
        results, seconds = _export(source, label, fields, keep, "fp32", ["local-onnx", "android-tflite"], work,
                                   recover_time)
        row = _row(source, label, results, seconds, dense_acc)
        if label == "dense":
            dense_acc = row["accuracy"]
            row["drop_pt"] = 0.0
        rows.append(row)
        print(f"  {source.name}: {label}: {seconds:.0f} s", flush=True)
    feed = {n: source.eval_data.inputs[n][:1] for n in source.input_names}
    _time_interleaved(rows, feed)
    dense = rows[0]
    for r in rows:
        for key in ("onnx_p50_ms", "tflite_p50_ms"):
            if r.get(key) and dense.get(key):
                r[key.replace("_p50_ms", "_speedup")] = round(dense[key] / r[key], 2)
    return rows


def int8_on_top(source, recover_time, work, dense_rows):
    """channels 0.5 /16 + kd, then int8 on both targets: size against the dense fp32 artifact."""
    out = []
    fields = {"prune_channels": 0.5, "channel_multiple": 16, "recover": "kd"}
    dense_acc = dense_rows[0]["accuracy"]
    for target, key in (("local-onnx", "onnx_kb"), ("android-tflite", "tflite_kb")):
        results, seconds = _export(source, "int8", fields, True, "int8", [target], work, recover_time)
        rep = results[0].report
        acc = rep.accuracy.artifact
        out.append({"model": source.name, "target": target, "compression": "channels 0.5 /16, kd + int8",
                    "kb": round(rep.size.artifact_bytes / 1024, 1),
                    "ratio_to_dense_fp32": round(rep.size.artifact_bytes / 1024 / dense_rows[0][key], 4),
                    "accuracy": acc, "drop_pt": round((dense_acc - acc) * 100, 2), "passed": rep.passed,
                    "failing": [c.name for c in rep.checks if not c.passed]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="four rows per model")
    ap.add_argument("--recover-time", type=float, default=60.0)
    ap.add_argument("--models", nargs="+", choices=("digits_cnn", "text_transformer"),
                    default=["digits_cnn", "text_transformer"])
    ap.add_argument("--only", nargs="+", metavar="LABEL", help="these rows only (the dense row always)")
    args = ap.parse_args()
    from edgeport.sample_models import load_sample

    columns = ["model", "compression", "params", "macs", "onnx_kb", "onnx_gzip_kb", "tflite_kb", "onnx_p50_ms",
               "onnx_speedup", "tflite_p50_ms", "tflite_speedup", "recovery_s", "accuracy", "drop_pt"]
    all_rows, int8_rows = [], []
    with tempfile.TemporaryDirectory(prefix="edgeport-bench-compression-") as tmp:
        for name, configs in (("digits_cnn", DIGITS), ("text_transformer", TEXT)):
            if name not in args.models:
                continue
            if args.quick:
                configs = [c for c in configs if c[0] in QUICK]
            if args.only:
                configs = [c for c in configs if c[0] == "dense" or c[0] in args.only]
            source = load_sample(name)
            work = Path(tmp) / name
            work.mkdir()
            rows = bench(source, configs, args.recover_time, work)
            all_rows += rows
            if name == "digits_cnn":
                int8_rows = int8_on_top(source, args.recover_time, work, rows)
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in all_rows]
    print()
    print_table(clean, columns)
    if int8_rows:
        print()
        print_table(int8_rows, ["model", "target", "compression", "kb", "ratio_to_dense_fp32", "accuracy",
                                "drop_pt", "passed", "failing"])
    name = "compression" if len(args.models) == 2 else "compression-" + args.models[0]
    write_json(name, {"host": platform.processor() or platform.machine(), "threads": 1,
                      "recover_time_s": args.recover_time, "rows": clean, "int8": int8_rows})


if __name__ == "__main__":
    main()
