"""ONNX static int8 (QDQ, onnxruntime's ``quantize_static``) with the int8 guard: the first weighted
layers kept float when int8 drifts from fp32 on calibration inputs."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ConversionError
from .base import ExportJob


def _calibration_feeds(job: ExportJob) -> list[dict[str, np.ndarray]]:
    data = job.calibration
    if data is None:
        raise ConfigError("int8 (static) needs calibration data: pass --data FILE.npz or use "
                          "--precision int8-dynamic")
    data = data.take(job.options.calibration_samples)
    return [data.sample(i) for i in range(len(data))]


def preprocess(src: Path, job: ExportJob) -> Path:
    """onnxruntime's quant_pre_process (shape inference + graph optimization). Without it static
    int8 came out slower than fp32 on this kind of CPU (see the project's toolchain notes)."""
    if not job.options.quant_preprocess:
        return src
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = job.workdir / "preprocessed.onnx"
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as exc:
        raise ConversionError("onnx", "ONNX int8 (quant_pre_process)", str(exc)) from exc
    return out


def to_int8_static(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    from .int8_guard import guard_indices, score, search_float_prefix
    from .onnx_host_kernels import weights_in_7_bits

    feeds = _calibration_feeds(job)
    per_channel = job.options.per_channel
    pre = preprocess(src, job)
    activations = job.options.activations
    reduce_range, why_reduced = weights_in_7_bits(job.options.reduce_range)
    _quantize_static(pre, dest, feeds, per_channel, activations, reduce_range, exclude=[])
    facts: dict[str, Any] = {
        "weights": "int8 " + ("per-channel" if per_channel else "per-tensor")
                   + (" in 7 bits (reduce_range)" if reduce_range else ""),
        "activations": f"{activations} asymmetric (QDQ, calibrated on {len(feeds)} samples)",
        "compute": "int8 where fused"}
    if why_reduced:
        facts["reduce_range"] = why_reduced
    if not job.options.int8_guard:
        return facts
    # the guard compares int8 with fp32 on calibration inputs only, never on evaluation data
    checks = [feeds[i] for i in guard_indices(len(feeds))]
    reference = _outputs(src, checks)
    tol = job.plan.tolerance
    classifier = job.source.classifier_output
    weighted = _weighted_nodes(pre)

    def build(k: int) -> dict[str, Any]:
        candidate = job.workdir / f"int8-float{k}.onnx"
        _quantize_static(pre, candidate, feeds, per_channel, activations, reduce_range,
                         exclude=weighted[:k])
        return {**score(_outputs(candidate, checks), reference, tol, classifier, k), "path": str(candidate)}

    first = score(_outputs(dest, checks), reference, tol, classifier, 0)
    with job.progress.step("int8 guard: compare with fp32 on calibration inputs"):
        result = search_float_prefix(first, len(weighted), build)
    chosen = result.trials[result.chosen]
    if result.float_layers:
        shutil.copyfile(chosen["path"], dest)
        facts["float_fallback_ops"] = weighted[:result.float_layers]
        facts["weights"] += f"; the first {result.float_layers} weighted layers kept fp32"
    if not result.met:
        facts["hint"] = ("static int8 drifts from fp32 on this model's calibration inputs even with its first "
                         "layers float; transformers usually keep their accuracy with --precision int8-dynamic")
    facts["int8_guard"] = {"met": result.met, "samples": len(checks),
                           "trials": [{k: v for k, v in t.items() if k != "path"} for t in result.trials],
                           "pick": {"trial": result.chosen, "float_layers": result.float_layers, "why": result.why}}
    return facts


def _quantize_static(src: Path, dest: Path, feeds: list[dict[str, np.ndarray]], per_channel: bool,
                     activations: str, reduce_range: bool, exclude: list[str]) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    from .onnx_shared_constants import store_constants_once

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    try:
        quantize_static(str(src), str(dest), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                        extra_options={"ActivationSymmetric": False})
    except Exception as exc:
        raise ConversionError("onnx", "ONNX int8 (quantize_static)", str(exc)) from exc
    store_constants_once(dest)


def _weighted_nodes(path: Path) -> list[str]:
    """Names of the Conv / MatMul / Gemm nodes in graph (execution) order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and n.name]


def _outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every output of ``path`` on ``feeds``, run in the validation's onnxruntime session."""
    from ..data import Dataset
    from ..validation.runtimes import get_runtime

    session = get_runtime("onnxruntime").load(path)
    try:
        data = Dataset({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})
        return session.predict(data)
    finally:
        session.close()
