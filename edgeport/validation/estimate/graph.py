"""Kernels of an exported artifact, read from the file (never from the exporter's state).

ONNX: shapes from ONNX shape inference; BatchNormalization, bias adds and single-input
activations that follow a convolution or a linear layer are fused into it (as runtimes fuse
them); QuantizeLinear / DequantizeLinear pairs are fused into the kernels they wrap.
TFLite: the flatbuffer's own static shapes (:func:`~edgeport.validation.inspect.tflite.read_nodes`);
fused activations are already in the op options; DEQUANTIZE of a constant (fp16 weights) is done
once at load and is not a kernel.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import EdgeportError
from .kernels import Kernel, conv_kernel, linear_kernel


class NotEstimable(EdgeportError):
    """The artifact's kernels cannot be counted (a shape is unknown, a format has no reader)."""


_ONNX_FUSABLE = {"BatchNormalization", "Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid",
                 "Tanh", "Elu", "Selu", "PRelu"}
_ONNX_FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "Identity", "QuantizeLinear",
              "DequantizeLinear", "ConstantOfShape", "Dropout", "Size"}
_ONNX_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid",
                     "LeakyRelu", "Pow", "Sqrt", "Erf", "Exp", "Log", "Neg", "Abs", "Max", "Min", "Where",
                     "Gelu", "Elu", "Selu", "PRelu", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Equal",
                     "Greater", "Less", "Not", "And", "Or", "Pad", "Concat", "Transpose", "Cast", "Expand",
                     "Tile", "Split", "Slice", "Mod"}
_ONNX_POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax",
              "ReduceSum", "ReduceMin", "ReduceL2"}


def _n(shape: Sequence[int]) -> int:
    return int(math.prod(max(int(d), 1) for d in shape)) if shape else 1


def onnx_kernels(path: Path) -> list[Kernel]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # shape inference refuses some graphs: say so, estimate nothing
        raise NotEstimable(f"ONNX shape inference failed: {type(exc).__name__}") from exc
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    consts = {i.name for i in g.initializer}
    for i in g.initializer:
        shapes[i.name] = list(i.dims)
    consumers: dict[str, int] = {}
    for node in g.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer = {o: node for node in g.node for o in node.output}

    def const(name: str) -> bool:   # an initializer, possibly through DequantizeLinear / Constant / Cast
        if name in consts:
            return True
        p = producer.get(name)
        return p is not None and (p.op_type == "Constant" or (p.op_type in ("DequantizeLinear", "Cast", "Identity")
                                                              and bool(p.input) and const(p.input[0])))

    def shape(name: str) -> list[int]:
        if name not in shapes:
            raise NotEstimable(f"the shape of ONNX tensor {name!r} is not known")
        return shapes[name]

    kernels: list[Kernel] = []
    compute_out: set[str] = set()   # outputs of kernels that later activations fuse into
    for node in g.node:
        op = node.op_type
        if op in _ONNX_FREE or node.domain not in ("", "ai.onnx"):
            if op in ("QuantizeLinear", "DequantizeLinear", "Identity", "Cast") and node.input \
                    and node.input[0] in compute_out:
                compute_out.update(node.output)
            continue
        ins = [i for i in node.input if i]
        if op in _ONNX_FUSABLE or (op in ("Add", "Mul") and len(ins) == 2 and any(const(i) for i in ins)):
            src = next((i for i in ins if not const(i)), None)
            if src in compute_out and consumers.get(src, 0) == 1:
                compute_out.update(node.output)
                continue
        if all(const(i) for i in ins):   # folded at load
            consts.update(node.output)
            continue
        out = shape(node.output[0])
        if op in ("Conv", "ConvTranspose"):
            x, w = shape(ins[0]), shape(ins[1])
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            if len(x) != 4 or len(w) != 4:
                kernels.append(Kernel("conv", 2.0 * _n(out) * _n(w[1:]), _n(x), _n(w), _n(out)))
            elif op == "Conv":
                kernels.append(conv_kernel(x[1], out[1], (out[2], out[3]), (w[2], w[3]), groups, (x[2], x[3])))
            else:
                kernels.append(Kernel("conv", 2.0 * _n(x) * w[1] * w[2] * w[3], _n(x), _n(w), _n(out)))
            compute_out.update(node.output)
        elif op in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a, b = ins[0], ins[1]
            sa = shape(a)
            k = sa[-1] if sa else 1
            if op == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute) and len(sa) == 2:
                k = sa[0]
            if const(b):
                kernels.append(linear_kernel(max(_n(out) // max(out[-1], 1), 1), k, out[-1]))
            else:
                kernels.append(Kernel("matmul", 2.0 * _n(out) * k, _n(sa) + _n(shape(b)), 0, _n(out)))
            compute_out.update(node.output)
        elif op in _ONNX_POOL:
            x = shape(ins[0])
            kernels.append(Kernel("pool", float(_n(x)), _n(x), 0, _n(out)))
        elif op in _ONNX_ELEMENTWISE:
            moved = sum(_n(shape(i)) for i in ins if not const(i))
            flops = 0.0 if op in ("Pad", "Concat", "Transpose", "Cast", "Expand", "Tile", "Split", "Slice") else _n(out)
            kernels.append(Kernel("elementwise", float(flops), moved, 0, _n(out)))
        else:   # softmax, normalization, resize, gather...
            moved = sum(_n(shape(i)) for i in ins if not const(i))
            kernels.append(Kernel("other", 5.0 * _n(out), moved, 0, _n(out)))
    return kernels


_TFL_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}
_TFL_COPY = {"PAD", "PADV2", "CONCATENATION", "TRANSPOSE", "QUANTIZE", "DEQUANTIZE", "CAST", "SLICE",
             "STRIDED_SLICE", "SPLIT", "SPLIT_V", "TILE", "BROADCAST_TO", "PACK", "UNPACK", "GATHER"}
_TFL_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
                    "LEAKY_RELU", "PRELU", "GELU", "SQRT", "RSQRT", "EXP", "LOG", "NEG", "ABS", "POW", "MAXIMUM",
                    "MINIMUM", "SQUARED_DIFFERENCE", "SELECT", "SELECT_V2", "FLOOR", "CEIL", "ROUND"}
_TFL_POOL = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}


def tflite_kernels(path: Path) -> list[Kernel]:
    from ..inspect.tflite import read_nodes

    kernels: list[Kernel] = []
    for node in read_nodes(path):
        op = node.op
        ins = [t for t in node.inputs if t is not None]
        if op in _TFL_FREE or not node.outputs or (ins and all(t.is_const for t in ins)):
            continue
        out = node.outputs[0].shape
        x = ins[0].shape if ins else ()
        w = ins[1].shape if len(ins) > 1 else ()
        if op == "CONV_2D" and len(w) == 4 and len(x) == 4 and len(out) == 4:      # NHWC, w [O, kh, kw, I]
            kernels.append(conv_kernel(x[3], out[3], (out[1], out[2]), (w[1], w[2]), max(x[3] // max(w[3], 1), 1),
                                       (x[1], x[2])))
        elif op == "DEPTHWISE_CONV_2D" and len(w) == 4 and len(x) == 4 and len(out) == 4:   # w [1, kh, kw, O]
            macs = _n(out) * w[1] * w[2]
            kernels.append(Kernel("depthwise", 2.0 * macs, _n(x), _n(w), _n(out)))
        elif op == "TRANSPOSE_CONV" and len(ins) > 2 and len(w) == 4:
            src = ins[2].shape
            kernels.append(Kernel("conv", 2.0 * _n(src) * w[0] * w[1] * w[2], _n(src), _n(w), _n(out)))
        elif op == "FULLY_CONNECTED" and len(w) == 2:
            units = max(w[0], 1)
            kernels.append(linear_kernel(max(_n(out) // units, 1), w[1], units))
        elif op == "BATCH_MATMUL" and len(ins) > 1 and x:
            adj = node.options.get("adj", (False, False))
            k = x[-2] if adj[0] and len(x) > 1 else x[-1]
            if ins[1].is_const:
                kernels.append(linear_kernel(max(_n(out) // max(out[-1], 1), 1), k, out[-1]))
            else:
                kernels.append(Kernel("matmul", 2.0 * _n(out) * k, _n(x) + _n(w), 0, _n(out)))
        elif op in _TFL_POOL:
            kernels.append(Kernel("pool", float(_n(x)), _n(x), 0, _n(out)))
        elif op in _TFL_COPY:
            kernels.append(Kernel("elementwise", 0.0, sum(_n(t.shape) for t in ins if not t.is_const), 0, _n(out)))
        elif op in _TFL_ELEMENTWISE:
            kernels.append(Kernel("elementwise", float(_n(out)), sum(_n(t.shape) for t in ins if not t.is_const), 0,
                                  _n(out)))
        else:
            kernels.append(Kernel("other", 5.0 * _n(out), sum(_n(t.shape) for t in ins if not t.is_const), 0,
                                  _n(out)))
    return kernels


def artifact_kernels(fmt: str, path: Path) -> list[Kernel]:
    """The kernels of an exported artifact of format ``fmt``; :class:`NotEstimable` for a format
    without a reader (CoreML's and TF.js's are left for later)."""
    readers: dict[str, Any] = {"onnx": onnx_kernels, "tflite": tflite_kernels}
    if fmt not in readers:
        raise NotEstimable(f"no kernel reader for {fmt} artifacts yet")
    try:
        return readers[fmt](Path(path))
    except NotEstimable:
        raise
    except EdgeportError as exc:
        raise NotEstimable(str(exc)) from exc
    except Exception as exc:  # a crafted or damaged file: no estimate, one line why
        raise NotEstimable(f"cannot count the kernels of {Path(path).name}: {type(exc).__name__}: {exc}"[:300]) from exc
