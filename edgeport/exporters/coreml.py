"""CoreML exporter: torch module -> ML Program (.mlpackage) with coremltools (an ONNX source first
becomes a torch module through onnx2torch; a TensorFlow source goes through coremltools' own
TensorFlow frontend), then weight compression (int8 / lut8 / lut4, sparse storage for pruned models) with coremltools.optimize.

Precisions: fp32 (FLOAT32 program), fp16 (FLOAT16 program: what the GPU / Neural Engine compute),
int8 (weights int8, dequantized to fp16 at load; activations stay fp16), lut8 / lut4 (k-means
palettized weights, fp16 compute). Inputs and outputs stay float32 / int32 at the interface.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConversionError
from ..formats import Artifact, get_format
from ..precision import Precision
from .base import Exporter, ExportJob

ENTRY = get_format("coreml").entry
# written by coremltools 9 beside the model for ExecuTorch debugging; not listed in
# Manifest.json, never read by CoreML, so it is not part of the shipped model
_DEBUG_FILES = ("executorch_debug_handle_mapping.json",)


class CoreMLExporter(Exporter):
    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        from ._coreml_compress import compress, count_weights
        from ._coreml_convert import convert_module

        precision = job.precision
        opts = job.options
        target = opts.deployment_target
        if opts.activation_quantization:
            raise ConfigError("activation_quantization is not available on Linux: coremltools calibrates "
                              "activations with MLModel.predict, which runs only on macOS")
        threshold = opts.weight_threshold
        src = job.source
        fp16 = precision is not Precision.FP32
        module, notes = job.module, []
        if module is None and src.tensorflow is None:  # an ONNX source: onnx2torch, then the torch path
            from ._onnx_to_torch import onnx_module
            from .torch_to_onnx import source_onnx

            feed = job.calibration.sample(0) if job.calibration is not None else src.example_feed()
            with job.progress.step("ONNX→torch (onnx2torch)"):
                module, notes = onnx_module(source_onnx(job), feed, src.input_names, Path(job.workdir))
        if src.tensorflow is not None:
            from ._tf_to_coreml import convert_tensorflow

            with job.progress.step(f"TensorFlow→CoreML ({'FLOAT16' if fp16 else 'FLOAT32'}, {target})"):
                mlmodel, captured = convert_tensorflow(job, fp16, target)
        else:
            with job.progress.step(f"torch→CoreML ({'FLOAT16' if fp16 else 'FLOAT32'}, {target})"):
                mlmodel, captured = convert_module(module, src.example_inputs, src.input_names,
                                                   src.output_names, fp16, target)
            if job.module is None:
                captured = f"onnx2torch, then {captured}"
        facts: dict[str, Any] = {
            "program": "mlprogram", "deployment_target": target, "captured_with": captured,
            "compute_precision": "fp16" if fp16 else "fp32",
            "weights": "fp16" if fp16 else "fp32",
            "activations": "fp16 (every intermediate tensor stored in fp16)" if fp16 else "fp32",
            "io": "float inputs/outputs float32 (cast to fp16 inside the program)" if fp16 else "float32",
            "weight_threshold": threshold,
        }
        if notes:
            facts["onnx_to_torch"] = notes
        if any(x.dtype.kind in "iu" and x.dtype.itemsize == 8 for x in src.example_inputs):
            facts["int64_inputs"] = "declared int32 (CoreML has no int64 tensors); feeds are cast"
        if precision.is_integer or job.zeros > 0:
            policy = None
            if opts.tensor_policy == "measured" and job.calibration is not None:
                from ._coreml_policy import PolicyInputs

                policy = PolicyInputs(job.calibration, job.plan.tolerance, src.classifier_output,
                                      Path(job.workdir), threshold)
            with job.progress.step(f"CoreML weight compression ({precision}, zeros {job.zeros:.0%})"):
                mlmodel, comp_facts = compress(mlmodel, precision, job.zeros, target, threshold, policy,
                                               job.progress.note)
            facts.update(comp_facts)
        if precision is Precision.INT8:
            facts["activations"] = "fp16 (weights-only int8: activation calibration needs macOS predict)"
        facts.update(count_weights(mlmodel.get_spec()))
        if facts["weight_tensors_compressed"]:
            facts["left_float_why"] = ("the constants left are 1-D (biases, normalization scales / offsets), "
                                       "which coremltools' compression passes leave as float")
            if facts.get("tensor_policy", {}).get("kept_float"):
                facts["left_float_why"] += ", and the weight tensors tensor_policy.kept_float names (and why)"
        units = opts.compute_units
        if units:
            facts["compute_units"] = (f"{units} requested; applied by the app at load "
                                      "(MLModelConfiguration.computeUnits), not stored in the package")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / ENTRY
        if path.exists():
            shutil.rmtree(path)
        try:
            mlmodel.save(str(path))
        except Exception as exc:
            raise ConversionError("coreml", "CoreML save (.mlpackage)", f"{type(exc).__name__}: {exc}") from exc
        for name in _DEBUG_FILES:
            (path / name).unlink(missing_ok=True)
        return Artifact(format="coreml", root=out_dir, entry=ENTRY, precision=precision,
                        input_names=tuple(src.input_names), output_names=tuple(src.output_names),
                        facts=facts)
