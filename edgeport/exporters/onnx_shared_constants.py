"""One copy of each identical initializer in a quantized ONNX graph.

onnxruntime's ``quantize_static`` writes a zero-point tensor per quantized weight and per bias,
all zeros for symmetric int8 weights and int32 biases: on EfficientNet-Lite0 about 109 KB of the
file, most of it repeated byte for byte among layers of equal width. Pointing every use at one copy
changes no value the graph computes, only the bytes stored.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .onnx_graph import subgraphs


def share_identical_initializers(model: Any) -> tuple[int, int]:
    """Rewrite ``model`` in place so that initializers equal in type, shape and bytes are stored
    once; returns (initializers removed, bytes saved). Initializers that are graph inputs or
    outputs, or that a subgraph reads, are left alone (their name is part of an interface)."""
    from onnx import numpy_helper

    graph = model.graph
    fixed = {v.name for v in graph.input} | {v.name for v in graph.output}
    for g in subgraphs(graph):
        fixed |= {v for n in g.node for v in n.input}
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    saved = 0
    for init in graph.initializer:
        if init.name in fixed or init.data_location != 0:   # external data: not read here
            continue
        array = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), hashlib.sha256(array.tobytes()).digest())
        if key in first:
            alias[init.name] = first[key]
            saved += array.nbytes
        else:
            first[key] = init.name
    if not alias:
        return 0, 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    keep = [i for i in graph.initializer if i.name not in alias]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(alias), saved


def store_constants_once(path: Path) -> None:
    """:func:`share_identical_initializers` on the ONNX file at ``path``, rewritten only when it changed."""
    import onnx

    model = onnx.load(str(path))
    if share_identical_initializers(model)[0]:
        onnx.save(model, str(path))
