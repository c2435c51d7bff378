"""ONNX exporter: fp32 / fp16 / bf16 (storage) / int8 static QDQ / int8-dynamic."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ConversionError
from ..formats import Artifact, get_format
from ..precision import Precision
from .base import Exporter, ExportJob
from .torch_to_onnx import source_onnx

ENTRY = get_format("onnx").entry


class OnnxExporter(Exporter):
    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        out_dir.mkdir(parents=True, exist_ok=True)
        fp32 = source_onnx(job)
        dest = out_dir / ENTRY
        prec = job.precision
        with job.progress.step(f"onnx: {prec}"):
            if prec is Precision.FP32:
                shutil.copyfile(fp32, dest)
                facts = {"weights": "fp32", "activations": "fp32", "compute": "fp32"}
            else:
                facts = _CONVERTERS[prec](fp32, dest, job)
            if prec in (Precision.INT8, Precision.INT8_DYNAMIC):
                facts.update(_stored_weights(dest))
            if job.source.tensorflow is not None:
                facts["path"] = "TensorFlow source -> frozen SavedModel -> tf2onnx"
        return Artifact("onnx", out_dir, ENTRY, prec, tuple(job.source.input_names),
                        tuple(job.source.output_names), facts)


def _to_fp16(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    import onnx
    from onnxconverter_common import float16

    try:
        model = float16.convert_float_to_float16(_outputs_not_consumed(onnx.load(str(src))), keep_io_types=True)
    except Exception as exc:
        raise ConversionError("onnx", "ONNX fp16 conversion", str(exc)) from exc
    onnx.save(_casts_agree(model), str(dest))
    return {"weights": "fp16", "activations": "fp16", "io": "float32 (cast at the edges)",
            "compute": "fp16 where onnxruntime has fp16 kernels, else upcast"}


def _casts_agree(model: Any) -> Any:
    """A ``Cast`` to float32 whose result the fp16 converter retyped as float16 (its value_info)
    casts to float16: the converter rewrites the types but not the node (seen on Hugging Face
    BERT's attention mask, ``mask.to(float)``), and onnxruntime refuses the mismatch."""
    from onnx import TensorProto

    graph = model.graph
    typed = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        if node.op_type != "Cast" or not node.output or node.output[0] in outputs:
            continue
        if typed.get(node.output[0]) != TensorProto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    return model


def _outputs_not_consumed(model: Any) -> Any:
    """Every graph output that other nodes also read (logits feeding a softmax output) becomes an
    ``Identity`` of an internal value. The fp16 converter casts a graph output back to float32
    for ``keep_io_types`` and its readers would then get float32 where it typed them float16
    (onnxruntime refuses that model)."""
    import onnx

    graph = model.graph
    read = {v for n in graph.node for v in n.input}
    for out in graph.output:
        if out.name not in read:
            continue
        inner = f"{out.name}__value"
        for node in graph.node:
            node.input[:] = [inner if v == out.name else v for v in node.input]
            node.output[:] = [inner if v == out.name else v for v in node.output]
        graph.node.append(onnx.helper.make_node("Identity", [inner], [out.name], name=f"{out.name}__output"))
    return model


def _to_bf16_storage(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    """Store float weights as bfloat16, each followed by a Cast to float.

    onnxruntime's CPU provider has no bf16 MatMul/Conv/Add kernels, but it does load bf16
    initializers and Cast them: so this is bf16 *storage* with fp32 arithmetic, and the report
    says so. The rounding error of bf16 weights is real and is what parity measures.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    new_inits, casts, converted = [], [], 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims, dtype=np.int64) < 16:
            new_inits.append(init)  # scalars and shape-like constants stay fp32
            continue
        arr = numpy_helper.to_array(init).astype(np.float32)
        bits = arr.view(np.uint32)
        # round to nearest even into the top 16 bits
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        t = TensorProto()
        t.name = init.name + "__bf16"
        t.data_type = TensorProto.BFLOAT16
        t.dims.extend(arr.shape)
        t.raw_data = rounded.tobytes()
        new_inits.append(t)
        casts.append(helper.make_node("Cast", [t.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__bf16_cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError("onnx", "bf16 storage rewrite", str(exc)) from exc
    onnx.save(model, str(dest))
    return {"weights": f"bf16 ({converted} tensors)", "activations": "fp32", "compute": "fp32",
            "note": "onnxruntime's CPU provider has no bf16 arithmetic kernels: weights are stored in "
                    "bf16 and cast to fp32 at load; the size and the rounding error are bf16's, the "
                    "speed is fp32's"}


def _calibration_feeds(job: ExportJob) -> list[dict[str, np.ndarray]]:
    data = job.calibration
    if data is None:
        raise ConfigError("int8 (static) needs calibration data: pass --data FILE.npz or use "
                          "--precision int8-dynamic")
    data = data.take(job.options.calibration_samples)
    return [data.sample(i) for i in range(len(data))]


def _preprocess(src: Path, job: ExportJob) -> Path:
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


def _to_int8_static(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    from .int8_guard import guard_indices, score, search_float_prefix

    feeds = _calibration_feeds(job)
    per_channel = job.options.per_channel
    pre = _preprocess(src, job)
    activations = job.options.activations
    reduce_range, why_reduced = _reduce_range(job.options.reduce_range)
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


def _reduce_range(setting: str) -> tuple[bool, str | None]:
    """Whether static int8 stores 7-bit weights, and why (None when it keeps the full range)."""
    if setting == "on":
        return True, "asked for (options.reduce_range = \"on\")"
    if setting == "off":
        return False, None
    from .onnx_host_kernels import saturation_reason

    reason = saturation_reason()
    return reason is not None, reason


def _quantize_static(src: Path, dest: Path, feeds: list[dict[str, np.ndarray]], per_channel: bool,
                     activations: str, reduce_range: bool, exclude: list[str]) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

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
    _store_constants_once(dest)


def _store_constants_once(path: Path) -> None:
    import onnx

    from .onnx_shared_constants import share_identical_initializers

    model = onnx.load(str(path))
    if share_identical_initializers(model)[0]:
        onnx.save(model, str(path))


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


def _to_int8_dynamic(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = _preprocess(src, job)
    per_channel = job.options.per_channel
    try:
        quantize_dynamic(str(pre), str(dest), weight_type=QuantType.QInt8, per_channel=per_channel)
    except Exception as exc:
        raise ConversionError("onnx", "ONNX int8-dynamic (quantize_dynamic)", str(exc)) from exc
    return {"weights": "int8 " + ("per-channel" if per_channel else "per-tensor"),
            "activations": "fp32, quantized to uint8 at run time for MatMul/Conv",
            "compute": "int8 (dynamic)"}


def _stored_weights(path: Path) -> dict[str, Any]:
    """What the file really stores: weight bytes by element type, the share stored as 8-bit, and
    the ops whose weights stayed float (e.g. GRU/LSTM: onnxruntime quantizes no recurrent op)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    users: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    by_type: dict[str, int] = {}
    float_ops: set[str] = set()
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.size < 16:  # scales, zero points, shapes
            continue
        by_type[arr.dtype.name] = by_type.get(arr.dtype.name, 0) + arr.nbytes
        if arr.dtype.kind == "f":
            float_ops |= users.get(init.name, set()) - {"DequantizeLinear", "QuantizeLinear"}
    total = sum(by_type.values()) or 1
    eight_bit = sum(v for k, v in by_type.items() if k in ("int8", "uint8"))
    facts: dict[str, Any] = {"weight_bytes_by_type": by_type, "weight_bytes_8bit_share": round(eight_bit / total, 4)}
    if eight_bit / total < 0.5:
        facts["weights"] = (f"mostly float: only {eight_bit / total:.0%} of the weight bytes are 8-bit; "
                            f"ops that keep float weights: {', '.join(sorted(float_ops)) or 'none'}")
        facts["hint"] = ("int8 compresses little of this model (onnxruntime quantizes no recurrent op): "
                         "--precision fp16 halves every weight")
    return facts


_CONVERTERS = {Precision.FP16: _to_fp16, Precision.BF16: _to_bf16_storage, Precision.INT8: _to_int8_static,
               Precision.INT8_DYNAMIC: _to_int8_dynamic}
