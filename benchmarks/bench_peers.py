"""edgeport's int8 / lut4 beside each target's peer default path, in one run, on a real ImageNet CNN.

    python benchmarks/bench_peers.py [--model efficientnet_lite0|efficientnet_lite1]
                                     [--targets local-onnx ios-coreml ...] [--runs N]

For EfficientNet-Lite0 or -Lite1 (sample:efficientnet_lite0 / _lite1: 64 views of real photos
judged, 116 other images for calibration), per target:

- **edgeport**: ``edgeport.export`` at int8 (and lut4 on ios-coreml, on iOS16 and on iOS18 with
  per-grouped-channel palettes), the artifact it bundles;
- **peer default**: what a user gets by hand from the same intermediate with the peer's defaults —
  onnxruntime ``quantize_static`` (its defaults: QDQ, per-tensor, MinMax) on edgeport's fp32 ONNX
  file; ``TFLiteConverter`` full-integer PTQ (``Optimize.DEFAULT`` + representative data +
  ``TFLITE_BUILTINS_INT8``) on edgeport's SavedModel; coremltools ``linear_quantize_weights`` and
  ``palettize_weights(nbits=4)`` with their default configs on a plain FLOAT16 ``ct.convert``;
  tensorflowjs ``convert_tf_saved_model`` with ``quantization_dtype_map={"uint8": "*"}`` (the
  converter's ``--quantize_uint8``) on edgeport's SavedModel.

Every artifact runs in its target's runtime (onnxruntime, LiteRT/XNNPACK, the CoreML emulator,
TF.js in Node): bytes of every file, top-1 agreement and cosine with the fp32 PyTorch model on the
64 evaluation images, and p50 of one image beside the target's fp32 artifact timed in the same
loop (CoreML's figure is the emulator's numpy time: not an iPhone's). Calibration never sees the
evaluation images.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

TARGETS = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")
RUNTIME = {"local-onnx": "onnxruntime", "android-tflite": "litert", "ios-coreml": "coreml-emulator",
           "browser-tfjs": "tfjs-node"}


#: written by coremltools beside the model for ExecuTorch debugging: not in Manifest.json, never read
#: by CoreML (edgeport does not ship it), so no package is charged for it
NOT_THE_MODEL = ("executorch_debug_handle_mapping.json",)


def folder_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name not in NOT_THE_MODEL)


def judge(path: Path, runtime: str, images: np.ndarray, reference: np.ndarray) -> tuple[dict[str, Any], Any]:
    """Agreement and cosine of the artifact at ``path`` on the evaluation images, and its session."""
    from edgeport.data import Dataset
    from edgeport.validation.layout import to_source_layout
    from edgeport.validation.metrics import ErrorStats, top1_agreement
    from edgeport.validation.runtimes import get_runtime

    sess = get_runtime(runtime).load(Path(path), threads=1)
    name = sess.input_specs[0].name
    out = next(iter(sess.predict(Dataset({name: images})).values()))
    aligned, _ = to_source_layout({"logits": reference}, {"logits": out})
    got = np.asarray(aligned["logits"], dtype=np.float64).reshape(reference.shape)
    stats = ErrorStats.from_arrays("logits", reference, got)
    return {"bytes": folder_bytes(path), "agreement": top1_agreement(reference, got), "cosine": stats.cosine,
            "sqnr_db": stats.sqnr_db}, sess


def p50_pair(sessions: dict[str, Any], feed_for: dict[str, dict[str, np.ndarray]], runs: int) -> dict[str, float]:
    """p50 (ms) of each session on one image, the runs of all of them interleaved in one loop."""
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for k, s in sessions.items():  # warm-up
        for _ in range(3):
            s.run(feed_for[k])
    for _ in range(runs):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(feed_for[k])
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def edgeport_artifact(src: Any, target: str, precision: str, out: Path, profile: str | None = None) -> tuple[Path, float]:
    import edgeport

    t0 = time.perf_counter()
    (res,) = edgeport.export(src, [profile or target], precision=precision, out_dir=out)
    if res.report is None:
        raise RuntimeError(f"{target} {precision}: {res.error}")
    entry = {"local-onnx": "model.onnx", "android-tflite": "model.tflite", "ios-coreml": "model.mlpackage",
             "browser-tfjs": "tfjs"}[target]
    return res.bundle / entry, time.perf_counter() - t0


def saved_model(cache: Path) -> Path:
    found = sorted(cache.rglob("saved_model.pb"), key=lambda p: len(str(p)))
    if not found:
        raise RuntimeError(f"no SavedModel in the conversion cache {cache}")
    return found[0].parent


# -- the peers' default paths ----------------------------------------------------------------------
def ort_static_default(fp32: Path, calib: np.ndarray, out: Path) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    name = next(i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {name: x}

    quantize_static(str(fp32), str(out), Reader())
    return out


def tflite_ptq_default(sm: Path, calib: np.ndarray, out: Path) -> Path:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(sm))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(conv.convert())
    return out


def coreml_defaults(src: Any, out: Path) -> dict[str, Path]:
    import warnings

    import torch

    from edgeport.exporters._coreml_convert import import_coremltools

    ct = import_coremltools()
    import coremltools.optimize.coreml as cto

    x = torch.from_numpy(src.example_inputs[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(src.module.eval(), (x,)).run_decompositions({})
        fp16 = ct.convert(program, inputs=[ct.TensorType(name="image", shape=tuple(x.shape))],
                          convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    paths = {"fp16": out / "fp16.mlpackage", "int8": out / "int8.mlpackage", "lut4": out / "lut4.mlpackage"}
    fp16.save(str(paths["fp16"]))
    cto.linear_quantize_weights(fp16, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig())).save(
        str(paths["int8"]))
    cto.palettize_weights(fp16, cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=4))).save(
        str(paths["lut4"]))
    return paths


def tfjs_uint8_default(sm: Path, out: Path) -> Path:
    from edgeport.exporters._tfjs_convert import import_converter

    import_converter().convert_tf_saved_model(str(sm), str(out), quantization_dtype_map={"uint8": "*"})
    return out


# -- the run ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per artifact (interleaved)")
    ap.add_argument("--model", default="efficientnet_lite0", choices=("efficientnet_lite0", "efficientnet_lite1"))
    args = ap.parse_args()

    import edgeport
    from edgeport.source_specs import load_source

    src = load_source(f"sample:{args.model}")
    images = src.eval_data.inputs["image"]
    calib = src.calibration_data.inputs["image"][:128]
    reference = src.reference(src.eval_data)["logits"].astype(np.float64)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp, edgeport.conversion_cache(Path(tmp) / "cache"):
        tmp_path = Path(tmp)
        for target in args.targets:
            runtime = RUNTIME[target]
            arts: dict[str, Path] = {}
            took: dict[str, float] = {}
            arts["fp32"], took["fp32"] = edgeport_artifact(src, target, "fp32", tmp_path / "fp32")
            arts["edgeport int8"], took["edgeport int8"] = edgeport_artifact(src, target, "int8", tmp_path / "int8")
            peer = tmp_path / f"peer-{target}"
            peer.mkdir()
            if target == "local-onnx":
                arts["ORT quantize_static defaults"] = ort_static_default(arts["fp32"], calib, peer / "model.onnx")
            elif target == "android-tflite":
                arts["TFLiteConverter full-int8 PTQ"] = tflite_ptq_default(saved_model(tmp_path / "cache"), calib,
                                                                          peer / "model.tflite")
            elif target == "ios-coreml":
                arts["edgeport lut4"], took["edgeport lut4"] = edgeport_artifact(src, target, "lut4", tmp_path / "lut4")
                profile = tmp_path / "ios-coreml-ios18.toml"
                base = Path(edgeport.__file__).parent / "targets" / "profiles" / "ios-coreml.toml"
                profile.write_text(base.read_text().replace('deployment_target = "iOS16"', 'deployment_target = "iOS18"'))
                arts["edgeport lut4 iOS18"], took["edgeport lut4 iOS18"] = edgeport_artifact(
                    src, target, "lut4", tmp_path / "lut4-18", str(profile))
                by_hand = coreml_defaults(src, peer)
                arts["coremltools linear_quantize_weights defaults"] = by_hand["int8"]
                arts["coremltools palettize_weights(nbits=4) defaults"] = by_hand["lut4"]
            else:
                arts["tensorflowjs --quantize_uint8"] = tfjs_uint8_default(saved_model(tmp_path / "cache"), peer / "tfjs")
            sessions, found = {}, {}
            for label, path in arts.items():
                found[label], sessions[label] = judge(path, runtime, images, reference)
            feeds = {k: {s.input_specs[0].name: images[:1]} for k, s in sessions.items()}
            p50 = p50_pair(sessions, feeds, args.runs)
            for label, figures in found.items():
                rows.append({"target": target, "path": label, **figures, "ratio": figures["bytes"] / found["fp32"]["bytes"],
                             "p50_ms": p50[label], "p50_vs_fp32": p50[label] / p50["fp32"],
                             "export_s": round(took[label], 1) if label in took else None})
            for s in sessions.values():
                s.close()
            print_table([r for r in rows if r["target"] == target],
                        ["target", "path", "bytes", "ratio", "agreement", "cosine", "p50_ms", "p50_vs_fp32"])
            print(flush=True)
    print_table(rows, ["target", "path", "bytes", "ratio", "agreement", "cosine", "sqnr_db", "p50_ms", "p50_vs_fp32"])
    write_json("bench_peers" if args.model == "efficientnet_lite0" else f"bench_peers_{args.model}",
               {"model": args.model, "host": platform.platform(),
                "evaluated_on": "64 views of 8 scikit-image photos (agreement with fp32 PyTorch)", "rows": rows})


if __name__ == "__main__":
    main()
