"""browser-tfjs: edgeport's TF.js exports beside the TF.js converter's own quantization flags
applied by hand (``tensorflowjs_converter --quantize_float16`` / ``--quantize_uint8`` on the same
plain SavedModel), same models, same run, judged in real TF.js (Node wasm and headless Chromium).

    python benchmarks/bench_tfjs.py [--no-chromium]
"""
from __future__ import annotations

import argparse
import gzip
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

# what the converter's CLI flags turn into (tensorflowjs.converters.converter builds this map)
BY_HAND = {"by hand: --quantize_float16": {"float16": True}, "by hand: --quantize_uint8": {"uint8": True}}


def sizes(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.iterdir() if f.is_file()]
    return (sum(f.stat().st_size for f in files),
            sum(len(gzip.compress(f.read_bytes(), 9, mtime=0)) for f in files))


def judge(model_json: Path, golden, reference: np.ndarray, runtimes: list[str]) -> dict:
    """Run every golden sample in each runtime; agreement, error and latency per runtime."""
    from edgeport.validation.runtimes import get_runtime

    row: dict = {}
    for rt in runtimes:
        sess = get_runtime(rt).load(model_json, threads=1, timeout_s=300)
        try:
            # by-hand models carry no edgeport names: feed by position, read the first output
            feed = dict(zip([s.name for s in sess.input_specs], golden.inputs.values()))
            from edgeport.data import Dataset

            out = next(iter(sess.predict(Dataset(feed)).values()))
            timing = sess.time({k: v[:1] for k, v in feed.items()}, 10, 100)
        finally:
            sess.close()
        short = "node" if rt == "tfjs-node" else "chromium"
        row[f"agree_{short}"] = float((out.argmax(1) == reference.argmax(1)).mean())
        row[f"p50_{short}_ms"] = float(np.median(timing.times_ms))
        if rt == "tfjs-node":
            row["max_abs"] = float(np.abs(out - reference).max())
            if golden.labels is not None:
                row["accuracy"] = float((out.argmax(1) == golden.labels).mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-chromium", action="store_true", help="judge in Node only")
    args = ap.parse_args()
    from edgeport.exporters import ExportJob, get_exporter
    from edgeport.exporters import _tfjs_convert as conv
    from edgeport.exporters._onnx2tf_env import onnx_to_saved_model
    from edgeport.exporters.torch_to_onnx import torch_to_onnx
    from edgeport.source_data import golden_inputs
    from edgeport.progress import SILENT
    from edgeport.sample_models import load_sample
    from edgeport.targets.profile import load_profile, resolve_plan

    runtimes = ["tfjs-node"] + ([] if args.no_chromium else ["tfjs-chromium"])
    rows = []
    for name in ("digits_cnn", "text_transformer"):
        src = load_sample(name)
        golden, _ = golden_inputs(src)
        reference = src.reference(golden)[src.output_names[0]]
        with tempfile.TemporaryDirectory() as tmp:
            tmp_p = Path(tmp)
            fp32_bytes = None
            for prec in ("fp32", "fp16", "int8"):
                plan = resolve_plan(load_profile("browser-tfjs"), prec)
                work = tmp_p / f"work-{prec}"
                work.mkdir()
                t0 = time.perf_counter()
                art = get_exporter("tfjs").export(ExportJob(src, src.module, plan, None, SILENT, work),
                                                  tmp_p / f"ours-{prec}")
                raw, gz = sizes(art.path.parent)
                fp32_bytes = fp32_bytes or art.fp32_bytes
                rows.append({"model": name, "variant": f"edgeport {prec}", "size_kb": raw / 1024,
                             "gzip_kb": gz / 1024, "ratio": raw / fp32_bytes,
                             "export_s": time.perf_counter() - t0, **judge(art.path, golden, reference, runtimes)})
            # the same plain SavedModel (cached from the exports above), converter flags by hand
            onnx = torch_to_onnx(src.module, src.example_inputs, src.input_names, src.output_names,
                                 tmp_p / "plain.onnx")
            saved = onnx_to_saved_model(onnx, tmp_p / "saved_model", keep_nchw=True)
            plain_raw, _ = sizes(conv.convert_saved_model(saved, tmp_p / "plain-fp32").parent)
            for label, qmap in BY_HAND.items():
                t0 = time.perf_counter()
                mj = conv.convert_saved_model(saved, tmp_p / label.split("--")[1], qmap)
                raw, gz = sizes(mj.parent)
                rows.append({"model": name, "variant": label, "size_kb": raw / 1024, "gzip_kb": gz / 1024,
                             "ratio": raw / plain_raw, "export_s": time.perf_counter() - t0,
                             **judge(mj, golden, reference, runtimes)})
    cols = ["model", "variant", "size_kb", "gzip_kb", "ratio", "agree_node", "agree_chromium", "max_abs",
            "accuracy", "p50_node_ms", "p50_chromium_ms", "export_s"]
    print_table(rows, cols)
    write_json("tfjs", {"host": platform.processor() or platform.machine(), "threads": 1,
                        "latency": "performance.now() inside JS, 10 warm-up + 100 runs, batch 1",
                        "rows": rows})


if __name__ == "__main__":
    main()
