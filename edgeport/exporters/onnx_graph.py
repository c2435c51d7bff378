"""Small helpers over ONNX graphs shared by the graph rewrites (:mod:`.onnx_rnn_unroll`,
:mod:`.onnx_resize_opset`, :mod:`.onnx_tfjs_lower`), and the cached file of a rewritten graph."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: a rewrite: (model) -> (the rewritten model, notes on what it changed; a note that starts with
#: "kept " names something it left as it was)
Rewrite = Callable[[Any], "tuple[Any, list[str]]"]


def rewritten_file(src: Path, folder: Path, rewrites: Sequence[Rewrite]) -> tuple[Path, list[str]]:
    """``src`` with ``rewrites`` applied in order, written once per content digest (and rewrite
    list) in ``folder``; ``src`` itself when no rewrite changed anything. Returns the notes."""
    import onnx

    src, folder = Path(src), Path(folder)
    h = hashlib.sha256(src.read_bytes())
    h.update(repr([f"{r.__module__}.{r.__qualname__}" for r in rewrites]).encode())
    dest = folder / f"rewritten-{h.hexdigest()[:24]}.onnx"
    notes_path = dest.with_suffix(".txt")
    if notes_path.is_file():
        notes = [n for n in notes_path.read_text().splitlines() if n]
        return (dest if dest.is_file() else src), notes
    model = onnx.load(str(src))
    notes: list[str] = []
    changed = False
    for rewrite in rewrites:
        model, got = rewrite(model)
        notes += got
        changed = changed or any(not n.startswith("kept ") for n in got)
    folder.mkdir(parents=True, exist_ok=True)
    if changed:
        partial = folder / f".{dest.name}.{os.getpid()}.partial"
        onnx.save(model, str(partial))
        os.replace(partial, dest)
    notes_path.write_text("\n".join(notes))
    return (dest if changed else src), notes


def replace_nodes(graph: Any, rewrite: Callable[[int, Any], "list[Any] | None"]) -> bool:
    """Each node (with its index) through ``rewrite``: None keeps it, a list of nodes replaces it
    in place. When anything was replaced the graph is rebuilt in that order and the initializers
    no node reads any more are dropped; returns whether it was."""
    nodes: list[Any] = []
    changed = False
    for idx, node in enumerate(graph.node):
        got = rewrite(idx, node)
        nodes.extend([node] if got is None else got)
        changed = changed or got is not None
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
        drop_unused_initializers(graph)
    return changed


def attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = [x.decode() if isinstance(x, bytes) else x for x in v] if isinstance(v, list) else (
            v.decode() if isinstance(v, bytes) else v)
    return out


def constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def static_shapes(model: Any) -> dict[str, tuple]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (shape inference is best effort: no shapes, no rewrite)
        return {}
    g = inferred.graph
    out = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    for init in g.initializer:
        out.setdefault(init.name, tuple(int(d) for d in init.dims))
    return out


def drop_unused_initializers(graph: Any) -> None:
    """The fused weights now live pre-transposed in new initializers: drop the old copies (they
    would double the file)."""
    used = {v for n in graph.node for v in n.input} | {o.name for o in graph.output}
    for g in subgraphs(graph):
        used |= {v for n in g.node for v in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def subgraphs(graph: Any) -> list[Any]:
    out = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                out.extend([attr.g, *subgraphs(attr.g)])
            for g in attr.graphs:
                out.extend([g, *subgraphs(g)])
    return out
