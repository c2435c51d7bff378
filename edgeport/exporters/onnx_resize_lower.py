"""ONNX ``Resize`` nodes whose coordinate mode onnx2tf gets wrong, rewritten as exact gathers.

onnx2tf maps ``Resize`` to ``tf.image.resize`` (half-pixel centres) for any model above opset 17:
``align_corners=True`` bilinear upsampling (``coordinate_transformation_mode="align_corners"``)
then came out at SQNR 10 dB, and an ``asymmetric`` nearest resize by a non-integer factor picks
other pixels. For static shapes each resized axis is a fixed map from output to input positions:
nearest is one ``Gather`` per axis, linear two ``Gather``s weighted by constant fractions. This
module computes those indices and weights from the ONNX operator's formulas (coordinate mode,
nearest rounding, clamping at the edges), so the rewrite is the operator itself, not an
approximation. Half-pixel resizes (what ``tf.image.resize`` computes) and cubic ones are kept.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the coordinate modes rewritten; half-pixel ones are what tf.image.resize computes itself
_REWRITTEN = ("align_corners", "asymmetric")


def lower_resize(model: Any) -> tuple[Any, list[str]]:
    """``model`` (edited in place) with the resizes onnx2tf would get wrong rewritten; notes."""
    from onnx import helper, numpy_helper

    from .onnx_graph import attrs, constants, static_shapes

    graph = model.graph
    consts = constants(graph)
    shapes = static_shapes(model)
    notes: list[str] = []
    new_nodes: list[Any] = []
    for idx, node in enumerate(graph.node):
        if node.op_type != "Resize":
            new_nodes.append(node)
            continue
        a = attrs(node)
        mode = a.get("mode", "nearest")
        coord = a.get("coordinate_transformation_mode", "half_pixel")
        in_shape = shapes.get(node.input[0])
        out_shape = shapes.get(node.output[0])
        if coord not in _REWRITTEN or mode == "cubic" or a.get("antialias") \
                or not _static(in_shape) or not _static(out_shape) or len(in_shape) != len(out_shape):
            new_nodes.append(node)
            continue
        scales = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        value = node.input[0]
        prefix = f"resize{idx}/"
        for axis, (n_in, n_out) in enumerate(zip(in_shape, out_shape)):
            if n_in == n_out and (scales is None or scales.size == 0 or scales[axis] == 1):
                continue
            scale = float(scales[axis]) if scales is not None and scales.size else n_out / n_in
            src = _source_positions(coord, n_in, n_out, scale, a)
            if mode == "nearest":
                idx_c = _nearest(src, a.get("nearest_mode", "round_prefer_floor"), n_in)
                value = _gather(graph, new_nodes, value, idx_c, axis, f"{prefix}a{axis}")
                continue
            src = np.clip(src, 0, n_in - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, n_in - 1)
            w_hi = (src - lo).astype(np.float32)
            shape = [n_out] + [1] * (len(in_shape) - axis - 1)
            g_lo = _gather(graph, new_nodes, value, lo, axis, f"{prefix}lo{axis}")
            g_hi = _gather(graph, new_nodes, value, hi, axis, f"{prefix}hi{axis}")
            w_lo_name, w_hi_name = f"{prefix}wlo{axis}", f"{prefix}whi{axis}"
            graph.initializer.extend([numpy_helper.from_array((1 - w_hi).reshape(shape), w_lo_name),
                                      numpy_helper.from_array(w_hi.reshape(shape), w_hi_name)])
            m_lo, m_hi, value_next = f"{prefix}mlo{axis}", f"{prefix}mhi{axis}", f"{prefix}y{axis}"
            new_nodes += [helper.make_node("Mul", [g_lo, w_lo_name], [m_lo], name=m_lo),
                          helper.make_node("Mul", [g_hi, w_hi_name], [m_hi], name=m_hi),
                          helper.make_node("Add", [m_lo, m_hi], [value_next], name=value_next)]
            value = value_next
        new_nodes.append(helper.make_node("Identity", [value], [node.output[0]], name=f"{prefix}out"))
        notes.append(f"lowered Resize {node.name or idx} ({mode}, {coord}) to gathers")
    if notes:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return model, notes


def _static(shape: tuple | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


def _source_positions(coord: str, n_in: int, n_out: int, scale: float, a: dict) -> np.ndarray:
    """Where each output index samples the input, by the operator's coordinate formula."""
    x = np.arange(n_out, dtype=np.float64)
    if coord == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    if coord == "asymmetric":
        return x / scale
    raise ValueError(f"coordinate mode {coord!r} is not rewritten")


def _nearest(src: np.ndarray, mode: str, n_in: int) -> np.ndarray:
    if mode == "floor":
        out = np.floor(src)
    elif mode == "ceil":
        out = np.ceil(src)
    elif mode == "round_prefer_ceil":
        out = np.floor(src + 0.5)
    else:  # round_prefer_floor
        out = np.array([math.ceil(v - 0.5) for v in src])
    return np.clip(out, 0, n_in - 1).astype(np.int64)


def _gather(graph: Any, nodes: list[Any], value: str, indices: np.ndarray, axis: int, name: str) -> str:
    from onnx import helper, numpy_helper

    graph.initializer.append(numpy_helper.from_array(indices.astype(np.int64), f"{name}_idx"))
    nodes.append(helper.make_node("Gather", [value, f"{name}_idx"], [name], name=name, axis=axis))
    return name
