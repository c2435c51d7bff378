"""TFLite / LiteRT exporter: torch (or ONNX) -> ONNX -> SavedModel (onnx2tf) -> .tflite.

Why this path (TOOLCHAIN.md): TensorFlow's own converter is the one path that produced every
precision, full-integer int8 included, for both the CNN and the token-id transformer; onnx2tf's
own int8 path casts token ids to float, and litert-torch's dynamic int8 of an embedding model
converts but fails at run time. Fallbacks: a full-integer int8 conversion that fails because an
op has no int8 kernel is retried with float fallback ops (recorded in the facts); any other failure
is refused with the converter's reason (ConversionError). A full-integer model is then compared
with the float one on calibration samples; when it drifts, the network's first layers are kept
float (``_tflite_convert.guard_int8``, option ``int8_guard``, on by default), recorded in the facts.

Every artifact is loaded in the LiteRT interpreter and run on the example input before it is
returned: an artifact that does not load is never shipped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError
from .base import Artifact, Exporter, ExportJob

INT8_IO = ("float", "int8")


class TFLiteExporter(Exporter):
    """Writes ``model.tflite``; its SignatureDef carries the source input/output names."""

    format = "tflite"
    precisions = ("fp32", "fp16", "int8", "int8-dynamic")

    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        from ._onnx2tf_env import onnx_to_saved_model, prepare_tensorflow_env
        from .torch_to_onnx import source_onnx

        prepare_tensorflow_env()
        precision = job.precision
        if precision not in self.precisions:
            raise ConversionError("tflite", "precision", f"{precision!r} is not one of {', '.join(self.precisions)}")
        int8_io = str(job.plan.option("int8_io", "float"))
        if int8_io not in INT8_IO:
            raise ConversionError("tflite", "options", f"int8_io must be one of {INT8_IO}, got {int8_io!r}")
        n_calib = int(job.plan.option("calibration_samples", 256))
        src = job.source
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()

        onnx_path = source_onnx(job)
        sm_dir = onnx_to_saved_model(onnx_path, work / "saved_model", keep_nchw=True, progress=job.progress)
        from ._tflite_convert import convert, wrap_saved_model

        with job.progress.step("tflite: naming the signature"):
            specs = wrap_saved_model(sm_dir, work / "saved_model_named",
                                     [(s.name, s.shape, s.dtype) for s in src.input_specs], src.output_names)
        float_fallback = False
        with job.progress.step(f"tflite: TFLiteConverter ({precision})"):
            try:
                flat = convert(work / "saved_model_named", precision, specs, job.calibration, n_calib, int8_io)
            except ConversionError as exc:
                if precision != "int8":
                    raise
                # some op has no int8 kernel: keep it float rather than refuse the whole model
                job.progress.note(f"full-integer conversion failed ({exc}); retrying with float fallback ops")
                flat = convert(work / "saved_model_named", precision, specs, job.calibration, n_calib,
                               int8_io, allow_float_fallback=True)
                float_fallback = True
        fp32_flat = None
        if precision != "fp32":
            # the size ratio's denominator (TFLite stores pruned zeros densely, so the pruned and the
            # dense model weigh the same) and the int8 guard's reference, converted once
            with job.progress.step("tflite: TFLiteConverter (fp32 reference)"):
                fp32_flat = convert(work / "saved_model_named", "fp32", specs, None, 0, "float")
        guard = None
        if precision == "int8" and not float_fallback and bool(job.plan.option("int8_guard", True)):
            from ._tflite_convert import guard_int8

            tol = job.plan.tolerance
            with job.progress.step("tflite: int8 vs float on calibration data"):
                guard = guard_int8(work / "saved_model_named", flat, specs, job.calibration, n_calib, int8_io,
                                   classify=src.task == "classification",
                                   agreement_min=tol.top1_agreement_min, cosine_min=tol.cosine_min,
                                   fp32_flat=fp32_flat)
            flat = guard.flat
        path = out_dir / "model.tflite"
        path.write_bytes(flat)
        with job.progress.step("tflite: load + run the example input in LiteRT"):
            io_types = check_runs(path, src.example_feed(), src.output_names)
        facts = describe(precision, io_types, specs, float_fallback, int8_io, guard)
        facts["conversion_s"] = round(time.perf_counter() - t0, 2)
        if fp32_flat is not None:
            facts["fp32_bytes"] = len(fp32_flat)
        return Artifact(format="tflite", root=out_dir, entry="model.tflite", precision=precision,
                        input_names=tuple(src.input_names), output_names=tuple(src.output_names),
                        facts=facts)


def check_runs(path: Path, feed: dict[str, np.ndarray], output_names: tuple[str, ...]) -> dict[str, str]:
    """Load ``path`` in the LiteRT interpreter and run ``feed``; refuse a file that fails either.

    Returns the artifact's I/O dtypes by name. The feed is adapted the way a caller would:
    int64 ids to int32, float to int8 with the input's quantization parameters.
    """
    from ai_edge_litert.interpreter import Interpreter

    from ..native_logs import native_stderr

    try:
        with native_stderr():  # the XNNPACK delegate announces itself on fd 2
            interp = Interpreter(model_path=str(path), num_threads=1)
            runner = interp.get_signature_runner()
            details = runner.get_input_details()
            args = {}
            for name, det in details.items():
                args[name] = _adapt(feed[name], det)
            outs = runner(**args)
    except Exception as exc:
        raise ConversionError("tflite", "load check", f"the converted file does not run in LiteRT: "
                              f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}") from exc
    missing = [n for n in output_names if n not in outs]
    if missing:
        raise ConversionError("tflite", "load check", f"outputs {missing} missing from the signature ({list(outs)})")
    bad = [n for n, v in outs.items() if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v))]
    if bad:
        raise ConversionError("tflite", "load check", f"outputs {bad} are not finite on the example input")
    types = {n: np.dtype(d["dtype"]).name for n, d in details.items()}
    types.update({n: np.dtype(d["dtype"]).name for n, d in runner.get_output_details().items()})
    return types


def _adapt(x: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    want = np.dtype(det["dtype"])
    scale, zero = det.get("quantization", (0.0, 0))
    if want.kind in "iu" and x.dtype.kind == "f" and scale:
        info = np.iinfo(want)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(want)
    return x.astype(want)


def describe(precision: str, io_types: dict[str, str], specs: list[Any], float_fallback: bool,
             int8_io: str, guard: Any = None) -> dict[str, Any]:
    """What is stored and what is computed, in words a reader of the report can trust."""
    io = ", ".join(f"{n}: {t}" for n, t in io_types.items())
    facts: dict[str, Any] = {"path": "torch -> ONNX -> onnx2tf SavedModel -> TFLiteConverter", "io": io}
    if any(3 <= len(s.shape) <= 5 for s in specs):
        facts["layout"] = "NCHW inputs kept (transposed to NHWC inside the graph)"
    if precision == "fp32":
        facts.update(weights="float32", activations="float32", compute="float32 (XNNPACK)")
    elif precision == "fp16":
        facts.update(weights="float16", activations="float32",
                     compute="float32 (weights dequantized at load; fp16 arithmetic only where the "
                             "device's XNNPACK/GPU delegate opts in)")
    elif precision == "int8-dynamic":
        facts.update(weights="int8 per-channel (dynamic range)", activations="float32 between ops",
                     compute="hybrid: activations quantized to int8 per call for conv/fc/matmul "
                             "(XNNPACK dynamic-range kernels), float elsewhere")
    else:
        kept = list(guard.float_layers) if guard is not None else []
        compute = "int8 (XNNPACK)"
        if float_fallback:
            compute += "; ops with no int8 kernel stay float32"
        if kept:
            compute += (f"; the first {len(kept)} ops stay float32 (weights and activations): full-integer "
                        "int8 drifted from float on the calibration data")
        facts.update(weights="int8 per-channel" + (f" (float32 in the {len(kept)} ops kept float)" if kept else ""),
                     activations="int8 (calibrated)", compute=compute, int8_io=int8_io,
                     float_fallback_ops=kept if kept else ("ops with no int8 kernel" if float_fallback else []))
        if guard is not None:
            # what decided: int8 vs float .tflite on calibration samples (never the evaluation data)
            facts["int8_guard"] = {"trials": guard.trials, "met": guard.met}
            if not guard.met:
                facts["hint"] = ("full-integer int8 drifts from float on the calibration inputs even with its "
                                 "first layers float; check the report, or try --precision int8-dynamic")
    cast = [s.name for s in specs if s.sm_dtype == "int64"]
    if cast:
        facts["int64_inputs"] = (f"{', '.join(cast)}: the artifact takes int32 (cast to int64 inside the graph); "
                                 "LiteRT and NNAPI have no int64 feeds on Android")
    return facts
