"""CoreML exporter: torch module -> ML Program (.mlpackage) with coremltools, then weight
compression (int8 / lut8 / lut4, sparse storage for pruned models) with coremltools.optimize.

Precisions: fp32 (FLOAT32 program), fp16 (FLOAT16 program: what the GPU / Neural Engine compute),
int8 (weights int8, dequantized to fp16 at load; activations stay fp16), lut8 / lut4 (k-means
palettized weights, fp16 compute). Inputs and outputs stay float32 / int32 at the interface.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConversionError
from .base import Artifact, Exporter, ExportJob

ENTRY = "model.mlpackage"
# written by coremltools 9 beside the model for ExecuTorch debugging; not listed in
# Manifest.json, never read by CoreML, so it is not part of the shipped model
_DEBUG_FILES = ("executorch_debug_handle_mapping.json",)


class CoreMLExporter(Exporter):
    format = "coreml"
    precisions = ("fp32", "fp16", "int8", "lut8", "lut4")

    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        from ._coreml_compress import compress, count_weights
        from ._coreml_convert import DEPLOYMENT_TARGETS, convert_module

        if job.module is None:
            raise ConfigError("ios-coreml needs a PyTorch source (module or .pt2); ONNX input is not "
                              "supported by coremltools")
        precision = job.precision
        if precision not in self.precisions:
            raise ConfigError(f"coreml cannot produce precision {precision!r}; supported: {', '.join(self.precisions)}")
        target = str(job.plan.option("deployment_target", "iOS16"))
        if target not in DEPLOYMENT_TARGETS:
            raise ConfigError(f"unknown deployment_target {target!r}; known: {', '.join(DEPLOYMENT_TARGETS)}")
        if job.plan.option("activation_quantization", False):
            raise ConfigError("activation_quantization is not available on Linux: coremltools calibrates "
                              "activations with MLModel.predict, which runs only on macOS")
        threshold = int(job.plan.option("weight_threshold", 0))
        src = job.source
        fp16 = precision != "fp32"
        with job.progress.step(f"coremltools convert ({'FLOAT16' if fp16 else 'FLOAT32'}, {target})"):
            mlmodel, captured = convert_module(job.module, src.example_inputs, src.input_names,
                                               src.output_names, fp16, target)
        facts: dict[str, Any] = {
            "program": "mlprogram", "deployment_target": target, "captured_with": captured,
            "compute_precision": "fp16" if fp16 else "fp32",
            "weights": "fp16" if fp16 else "fp32",
            "activations": "fp16 (every intermediate tensor stored in fp16)" if fp16 else "fp32",
            "io": "float inputs/outputs float32 (cast to fp16 inside the program)" if fp16 else "float32",
            "weight_threshold": threshold,
        }
        if any(x.dtype.kind in "iu" and x.dtype.itemsize == 8 for x in src.example_inputs):
            facts["int64_inputs"] = "declared int32 (CoreML has no int64 tensors); feeds are cast"
        if precision in ("int8", "lut8", "lut4") or job.plan.sparsity > 0:
            with job.progress.step(f"coremltools.optimize ({precision}, sparsity {job.plan.sparsity:g})"):
                mlmodel, comp_facts = compress(mlmodel, precision, job.plan.sparsity, target, threshold)
            facts.update(comp_facts)
        if precision == "int8":
            facts["activations"] = "fp16 (weights-only int8: activation calibration needs macOS predict)"
        facts.update(count_weights(mlmodel.get_spec()))
        if facts["weight_tensors_compressed"]:
            facts["left_float_why"] = ("the constants left are 1-D (biases, normalization scales / offsets), "
                                       "which coremltools' compression passes leave as float")
        units = job.plan.option("compute_units")
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
            raise ConversionError("coreml", "save", f"{type(exc).__name__}: {exc}") from exc
        for name in _DEBUG_FILES:
            (path / name).unlink(missing_ok=True)
        facts.update({
            "validated_by": "coreml-emulator: numpy interpreter of the saved ML Program on Linux",
            "emulator_proves": "the saved program (ops, weights, compression, fp16 storage) matches the "
                               "source model to the reported error",
            "emulator_cannot_prove": "bit-exactness with the iPhone GPU / Neural Engine; device latency",
        })
        return Artifact(format="coreml", root=out_dir, entry=ENTRY, precision=precision,
                        input_names=tuple(src.input_names), output_names=tuple(src.output_names),
                        facts=facts)
