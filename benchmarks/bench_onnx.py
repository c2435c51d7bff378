"""local-onnx: every sample model x precision through edgeport, beside the by-hand baseline
(plain torch.onnx.export + onnxruntime's quantize_dynamic with defaults), in one run.

    python benchmarks/bench_onnx.py [--real]     # --real adds EfficientNet-Lite0
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import p50_ms, print_table, write_json  # noqa: E402

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-dynamic")


def baseline(source, golden, reference, workdir: Path, dynamo: bool) -> dict:
    """What a user tries by hand: default export, default dynamic quantization, 1-thread ORT."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import quantize_dynamic

    workdir = workdir / f"baseline-{dynamo}"
    workdir.mkdir()
    plain, quant = workdir / "plain.onnx", workdir / "plain-int8.onnx"
    t0 = time.perf_counter()
    args = tuple(torch.from_numpy(x) for x in source.example_inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(source.module, args, str(plain), input_names=list(source.input_names),
                          output_names=list(source.output_names), dynamo=dynamo)
    row = {"model": source.name, "precision": f"by hand: dynamo={dynamo} + quantize_dynamic", "size_kb": None}
    try:
        quantize_dynamic(str(plain), str(quant))
    except Exception as exc:  # the dynamo graph's stale value_info trips the quantizer
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
        return row
    row["export_s"] = time.perf_counter() - t0
    files = [quant] + list(workdir.glob("plain-int8.onnx.data"))
    fp32_bytes = plain.stat().st_size + sum(f.stat().st_size for f in workdir.glob("plain.onnx.data"))
    row["size_kb"] = sum(f.stat().st_size for f in files) / 1024
    row["ratio"] = row["size_kb"] * 1024 / fp32_bytes
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(quant), opts, providers=["CPUExecutionProvider"])
    name = source.output_names[0]
    outs = np.concatenate([sess.run(None, golden.sample(i))[0] for i in range(len(golden))])
    row["agreement"] = float((outs.argmax(1) == reference[name].argmax(1)).mean()) if source.task == "classification" else None
    if golden.labels is not None:
        row["accuracy"] = float((outs.argmax(1) == golden.labels).mean())
    row["p50_ms"] = p50_ms(lambda f: sess.run(None, f), golden.sample(0))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", action="store_true", help="also EfficientNet-Lite0 (slower)")
    args = ap.parse_args()
    from edgeport.pipeline import export
    from edgeport.source_data import golden_inputs
    from edgeport.sample_models import load_sample

    names = ["digits_cnn", "text_transformer"] + (["efficientnet_lite0"] if args.real else [])
    rows = []
    for name in names:
        src = load_sample(name)
        golden, _ = golden_inputs(src)
        reference = src.reference(golden)
        with tempfile.TemporaryDirectory() as tmp:
            for prec in PRECISIONS:
                t0 = time.perf_counter()
                (res,) = export(src, ["local-onnx"], precision=prec, out_dir=Path(tmp) / prec)
                r = res.report
                rows.append({"model": name, "precision": prec, "size_kb": r.size.artifact_bytes / 1024,
                             "ratio": r.size.ratio, "agreement": r.parity.top1_agreement,
                             "accuracy": r.accuracy.artifact if r.accuracy else None,
                             "p50_ms": r.latency.p50_ms, "export_s": time.perf_counter() - t0,
                             "passed": r.passed})
            for dynamo in (True, False):
                rows.append(baseline(src, golden, reference, Path(tmp), dynamo))
    cols = ["model", "precision", "size_kb", "ratio", "agreement", "accuracy", "p50_ms", "export_s", "passed", "error"]
    print_table(rows, cols)
    write_json("onnx", {"host": platform.processor() or platform.machine(), "threads": 1, "rows": rows})


if __name__ == "__main__":
    main()
