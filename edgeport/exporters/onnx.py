"""ONNX exporter: fp32 / fp16 / bf16 (storage) / int8 static QDQ / int8-dynamic."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError
from ..formats import Artifact, get_format
from ..precision import Precision
from .base import Exporter, ExportJob
from .onnx_int8_static import preprocess, to_int8_static
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


def _to_int8_dynamic(src: Path, dest: Path, job: ExportJob) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = preprocess(src, job)
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


_CONVERTERS = {Precision.FP16: _to_fp16, Precision.BF16: _to_bf16_storage, Precision.INT8: to_int8_static,
               Precision.INT8_DYNAMIC: _to_int8_dynamic}
