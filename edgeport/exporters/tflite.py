"""TFLite / LiteRT exporter: torch (or ONNX) -> ONNX -> SavedModel (onnx2tf) -> .tflite.

Why this path (TOOLCHAIN.md): TensorFlow's own converter is the one path that produced every
precision, full-integer int8 included, for both the CNN and the token-id transformer; onnx2tf's
own int8 path casts token ids to float, and litert-torch's dynamic int8 of an embedding model
converts but fails at run time. Fallbacks: a full-integer int8 conversion that fails because an
op has no int8 kernel is retried with float fallback ops (recorded in the facts); any other failure
is refused with the converter's reason (ConversionError). A full-integer model is then compared
with the float one on calibration samples; when it drifts, the network's first layers are kept
float (``_tflite_guard.guard_int8``, option ``int8_guard``, on by default), recorded in the facts.

Every artifact is loaded in the LiteRT interpreter and run on the example input before it is
returned: an artifact that does not load is never shipped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError
from ..formats import Artifact, get_format
from ..precision import Precision
from .base import Exporter, ExportJob

ENTRY = get_format("tflite").entry


class TFLiteExporter(Exporter):
    """Writes ``model.tflite``; its SignatureDef carries the source input/output names."""

    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        from ..tf_source import prepare_tensorflow_env
        from ._onnx2tf_env import onnx_to_saved_model
        from .torch_to_onnx import source_onnx_for_tensorflow

        prepare_tensorflow_env()
        precision = job.precision
        int8_io = job.options.int8_io
        n_calib = job.options.calibration_samples
        src = job.source
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(job.workdir)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()

        if src.tensorflow is not None:  # TensorFlow's own converter on the source itself: no ONNX hop
            from ._tf_saved_model import canonical_saved_model

            sm_dir, prepared = canonical_saved_model(job), []
        else:
            onnx_path, prepared = source_onnx_for_tensorflow(job)
            sm_dir = onnx_to_saved_model(onnx_path, work / "saved_model", keep_nchw=True, progress=job.progress,
                                         cache_dir=job.shared_dir)
        from ._tflite_convert import convert, wrap_saved_model

        with job.progress.step("tflite: naming the signature"):
            specs = wrap_saved_model(sm_dir, work / "saved_model_named",
                                     [(s.name, s.shape, s.dtype) for s in src.input_specs], src.output_names)
        float_fallback = False
        with job.progress.step(f"SavedModel→TFLite ({precision})"):
            try:
                flat = convert(work / "saved_model_named", precision, specs, job.calibration, n_calib, int8_io)
            except ConversionError as exc:
                if precision is not Precision.INT8:
                    raise
                # some op has no int8 kernel: keep it float rather than refuse the whole model
                job.progress.note(f"full-integer conversion failed ({exc}); retrying with float fallback ops")
                flat = convert(work / "saved_model_named", precision, specs, job.calibration, n_calib,
                               int8_io, allow_float_fallback=True)
                float_fallback = True
        fp32_flat = None
        if precision is not Precision.FP32:
            # the size ratio's denominator (TFLite stores pruned zeros densely, so the pruned and the
            # dense model weigh the same) and the int8 guard's reference, converted once
            with job.progress.step("SavedModel→TFLite (fp32 reference)"):
                fp32_flat = convert(work / "saved_model_named", "fp32", specs, None, 0, "float")
        guard = None
        if precision is Precision.INT8 and not float_fallback and job.options.int8_guard:
            from ._tflite_guard import GuardInputs, guard_int8

            with job.progress.step("tflite: int8 vs float on calibration data"):
                runtimes = (job.plan.runtime, *job.plan.extra_runtimes)
                kernels = tuple(dict.fromkeys(r == "litert-reference" for r in runtimes))
                guard = guard_int8(GuardInputs(work / "saved_model_named", specs, job.calibration, n_calib, int8_io,
                                               job.plan.tolerance, src.classifier_output, work, kernels),
                                   flat, fp32_flat)
            flat = guard.flat
        path = out_dir / ENTRY
        path.write_bytes(flat)
        with job.progress.step("load in LiteRT (the example input)"):
            io_types = check_runs(path, src.example_feed(), src.output_names)
        facts = describe(precision, io_types, specs, float_fallback, int8_io, guard)
        facts["conversion_s"] = round(time.perf_counter() - t0, 2)
        if src.tensorflow is not None:
            facts.pop("layout", None)  # the source's own layout, channels-last or not
            facts["path"] = "TensorFlow source -> frozen SavedModel -> TFLiteConverter (no ONNX hop)"
        if prepared:
            facts["recurrent"] = prepared
        return Artifact(format="tflite", root=out_dir, entry=ENTRY, precision=precision,
                        input_names=tuple(src.input_names), output_names=tuple(src.output_names),
                        facts=facts, fp32_bytes=len(fp32_flat) if fp32_flat is not None else None)


def check_runs(path: Path, feed: dict[str, np.ndarray], output_names: tuple[str, ...]) -> dict[str, str]:
    """Load ``path`` in the validation's LiteRT session and run ``feed``; refuse a file that fails
    either. Returns the artifact's I/O dtypes by name."""
    from ..errors import EdgeportError
    from ..validation.runtimes.litert import LiteRTSession

    try:
        session = LiteRTSession(path, threads=1, reference=False)
        outs = session.run(feed)
    except EdgeportError as exc:
        raise ConversionError("tflite", "load in LiteRT", f"the converted file does not run in LiteRT: {exc}") from exc
    missing = [n for n in output_names if n not in outs]
    if missing:
        raise ConversionError("tflite", "load in LiteRT", f"outputs {missing} missing from the signature ({list(outs)})")
    bad = [n for n, v in outs.items() if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v))]
    if bad:
        raise ConversionError("tflite", "load in LiteRT", f"outputs {bad} are not finite on the example input")
    return session.io_dtypes()


def describe(precision: Precision, io_types: dict[str, str], specs: list[Any], float_fallback: bool,
             int8_io: str, guard: Any = None) -> dict[str, Any]:
    """What is stored and what is computed, in words a reader of the report can trust."""
    io = ", ".join(f"{n}: {t}" for n, t in io_types.items())
    facts: dict[str, Any] = {"path": "torch -> ONNX -> onnx2tf SavedModel -> TFLiteConverter", "io": io}
    if any(3 <= len(s.shape) <= 5 for s in specs):
        facts["layout"] = "NCHW inputs kept (transposed to NHWC inside the graph)"
    if precision is Precision.FP32:
        facts.update(weights="float32", activations="float32", compute="float32 (XNNPACK)")
    elif precision is Precision.FP16:
        facts.update(weights="float16", activations="float32",
                     compute="float32 (weights dequantized at load; fp16 arithmetic only where the "
                             "device's XNNPACK/GPU delegate opts in)")
    elif precision is Precision.INT8_DYNAMIC:
        facts.update(weights="int8 per-channel (dynamic range)", activations="float32 between ops",
                     compute="hybrid: activations quantized to int8 per call for conv/fc/matmul "
                             "(XNNPACK dynamic-range kernels), float elsewhere")
    else:
        kept = list(guard.float_layers) if guard is not None else []
        compute = "int8 (XNNPACK)"
        if float_fallback:
            compute += "; ops with no int8 kernel stay float32"
        if kept:
            prefix = guard is None or "kept_float" not in guard.trials[guard.chosen]
            compute += (f"; {'the first ' if prefix else ''}{len(kept)} ops stay float32 (weights and "
                        "activations): full-integer int8 drifted from float on the calibration data")
        facts.update(weights="int8 per-channel" + (f" (float32 in the {len(kept)} ops kept float)" if kept else ""),
                     activations="int8 (calibrated)", compute=compute, int8_io=int8_io,
                     float_fallback_ops=kept if kept else ("ops with no int8 kernel" if float_fallback else []))
        if guard is not None:
            # what decided: int8 vs float .tflite on calibration samples (never the evaluation data)
            facts["int8_guard"] = {"trials": guard.trials, "met": guard.met,
                                   "pick": {"trial": guard.chosen, "float_ops": len(kept), "why": guard.why}}
            if not guard.met:
                facts["hint"] = ("full-integer int8 drifts from float on the calibration inputs even with its "
                                 "first layers float; check the report, or try --precision int8-dynamic")
    cast = [s.name for s in specs if s.sm_dtype == "int64"]
    if cast:
        facts["int64_inputs"] = (f"{', '.join(cast)}: the artifact takes int32 (cast to int64 inside the graph); "
                                 "LiteRT and NNAPI have no int64 feeds on Android")
    return facts
