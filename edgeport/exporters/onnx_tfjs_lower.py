"""Graph rewrites for TF.js's kernels, before onnx2tf: exact, on static shapes.

- **Grouped convolutions** (``group`` > 1, not depthwise): TF.js's ``conv2d`` has no groups — it
  failed with "depth of input (32) must match input depth for filter 8". Each group becomes its
  own ``Conv`` on a ``Split`` of the channels, concatenated back.
- **Einsum**: TF.js's wasm backend registers no ``Einsum`` kernel. A two-operand equation
  becomes the usual batched matrix product: reduce the axes only one side has and the output
  lacks, transpose each side to (batch, kept, contracted) / (batch, contracted, kept), reshape to
  3-D, ``MatMul``, reshape and transpose to the output's order. Equations with ``...``, repeated
  letters in one operand, or other than two operands are kept (and named in the notes).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def split_grouped_conv(model: Any) -> tuple[Any, list[str]]:
    from .onnx_graph import constants, replace_nodes

    graph = model.graph
    consts = constants(graph)
    notes: list[str] = []

    def rewrite(idx: int, node: Any) -> list[Any] | None:
        w = consts.get(node.input[1]) if node.op_type == "Conv" else None
        groups = _groups(node) if w is not None else 1
        if groups <= 1 or w.shape[1] == 1:
            return None  # not grouped, or depthwise (one input channel per group: TF.js has depthwiseConv2d)
        notes.append(f"split grouped Conv {node.name or idx} ({groups} groups)")
        return _per_group(graph, node, w, consts, groups, f"gconv{idx}/")

    replace_nodes(graph, rewrite)
    return model, notes


def _groups(node: Any) -> int:
    from .onnx_graph import attrs

    return int(attrs(node).get("group", 1))


def _per_group(graph: Any, node: Any, w: np.ndarray, consts: dict[str, np.ndarray], groups: int, p: str) -> list[Any]:
    """Split the channels, one Conv per group on its slice of the weights, concatenate."""
    from onnx import helper, numpy_helper

    from .onnx_graph import attrs

    bias = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    per_out, per_in = w.shape[0] // groups, w.shape[1]
    split = p + "split"
    graph.initializer.append(numpy_helper.from_array(np.full(groups, per_in, np.int64), split))
    parts = [f"{p}x{g}" for g in range(groups)]
    nodes = [helper.make_node("Split", [node.input[0], split], parts, name=p + "Split", axis=1)]
    conv_attrs = {k: v for k, v in attrs(node).items() if k != "group"}
    outs = []
    for g in range(groups):
        ins = [parts[g], f"{p}w{g}"]
        graph.initializer.append(numpy_helper.from_array(w[g * per_out:(g + 1) * per_out].copy(), ins[1]))
        if bias is not None:
            ins.append(f"{p}b{g}")
            graph.initializer.append(numpy_helper.from_array(bias[g * per_out:(g + 1) * per_out].copy(), ins[2]))
        outs.append(f"{p}y{g}")
        nodes.append(helper.make_node("Conv", ins, [outs[-1]], name=f"{p}Conv{g}", **conv_attrs))
    nodes.append(helper.make_node("Concat", outs, [node.output[0]], name=p + "Concat", axis=1))
    return nodes


def lower_einsum(model: Any) -> tuple[Any, list[str]]:
    from .onnx_graph import attrs, replace_nodes, static_shapes

    graph = model.graph
    shapes = static_shapes(model)
    notes: list[str] = []

    def rewrite(idx: int, node: Any) -> list[Any] | None:
        if node.op_type != "Einsum":
            return None
        eq = attrs(node)["equation"].replace(" ", "")
        why = _why_not(eq, [shapes.get(i) for i in node.input])
        if why:
            notes.append(f"kept Einsum {node.name or idx} ({eq}): {why}")
            return None
        notes.append(f"lowered Einsum {node.name or idx} ({eq}) to MatMul")
        return _matmul_form(eq, list(node.input), [shapes[i] for i in node.input], node.output[0],
                            f"einsum{idx}/", graph)

    replace_nodes(graph, rewrite)
    return model, notes


def _why_not(eq: str, shapes: list[tuple | None]) -> str:
    if "->" not in eq or "." in eq:
        return "implicit output or ellipsis"
    ins = eq.split("->")[0].split(",")
    if len(ins) != 2:
        return f"{len(ins)} operands"
    if any(len(set(s)) != len(s) for s in ins):
        return "a letter repeated in one operand"
    if any(s is None or len(s) != len(t) or not all(isinstance(d, int) and d > 0 for d in s)
           for s, t in zip(shapes, ins)):
        return "shapes not static"
    return ""


def _matmul_form(eq: str, inputs: list[str], shapes: list[tuple], output: str, p: str, graph: Any) -> list[Any]:
    from onnx import helper, numpy_helper

    (sa, sb), so = eq.split("->")[0].split(","), eq.split("->")[1]
    dims = {c: d for s, shp in zip((sa, sb), shapes) for c, d in zip(s, shp)}
    batch = [c for c in so if c in sa and c in sb]
    left = [c for c in so if c in sa and c not in sb]
    right = [c for c in so if c in sb and c not in sa]
    contract = [c for c in sa if c in sb and c not in so]
    nodes: list[Any] = []
    n = iter(range(10_000))

    def const(value: np.ndarray) -> str:
        name = f"{p}c{next(n)}"
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def prepare(x: str, spec: str, order: list[str]) -> str:
        summed = [i for i, c in enumerate(spec) if c not in order]
        if summed:
            y = f"{p}sum{next(n)}"
            nodes.append(helper.make_node("ReduceSum", [x, const(summed)], [y], name=y, keepdims=0))
            x, spec = y, "".join(c for c in spec if c in order)
        perm = [spec.index(c) for c in order]
        if perm != list(range(len(perm))):
            y = f"{p}t{next(n)}"
            nodes.append(helper.make_node("Transpose", [x], [y], name=y, perm=perm))
            x = y
        return x

    def prod(letters: list[str]) -> int:
        return int(np.prod([dims[c] for c in letters])) if letters else 1

    a = prepare(inputs[0], sa, batch + left + contract)
    b = prepare(inputs[1], sb, batch + contract + right)
    a3, b3, m3 = f"{p}a3", f"{p}b3", f"{p}mm"
    nodes.append(helper.make_node("Reshape", [a, const([prod(batch), prod(left), prod(contract)])], [a3], name=a3))
    nodes.append(helper.make_node("Reshape", [b, const([prod(batch), prod(contract), prod(right)])], [b3], name=b3))
    nodes.append(helper.make_node("MatMul", [a3, b3], [m3], name=m3))
    full = batch + left + right
    shaped = f"{p}y"
    nodes.append(helper.make_node("Reshape", [m3, const([dims[c] for c in full])], [shaped], name=shaped))
    perm = [full.index(c) for c in so]
    if perm == list(range(len(perm))):
        nodes.append(helper.make_node("Identity", [shaped], [output], name=f"{p}out"))
    else:
        nodes.append(helper.make_node("Transpose", [shaped], [output], name=f"{p}out", perm=perm))
    return nodes
