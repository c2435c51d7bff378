"""TensorFlow source -> fp32 ONNX with tf2onnx, from the frozen SavedModel (never from a .tflite:
tf2onnx dropped a bias from one and crashed on another — see the toolchain notes).

The file takes the place of the torch export for the ONNX exporter (every precision of it) and for
the ONNX→torch path: graph inputs and outputs carry the source's names, in its order.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConversionError, MissingDependencyError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from .base import ExportJob

_STAGE = "TensorFlow→ONNX (tf2onnx)"


def tf_source_onnx(job: "ExportJob", opset: int | None = None) -> Path:
    """The job's TensorFlow source as an ONNX file, kept in the shared scratch folder."""
    from ._tf_saved_model import canonical_saved_model, output_key

    tfm = job.source.tensorflow
    opset = int(opset or getattr(job.options, "opset", 18))
    path = Path(job.shared_dir or job.workdir) / f"tf2onnx-{tfm.digest.rpartition(':')[2][:24]}-opset{opset}.onnx"
    if path.exists():
        return path
    saved_model = canonical_saved_model(job)
    from ..tf_source import import_tensorflow

    tf = import_tensorflow()
    try:
        import tf2onnx
    except ImportError as exc:
        raise MissingDependencyError("tf2onnx", hint=f"import failed: {exc}") from exc
    names = [n for n, _, _ in tfm.inputs]
    specs = [tf.TensorSpec(shape, dtype, name=name) for name, shape, dtype in tfm.inputs]
    with job.progress.step(f"{_STAGE}, opset {opset}"):
        loaded = tf.saved_model.load(str(saved_model))
        sig = loaded.signatures["serving_default"]
        fn = tf.function(lambda *xs: sig(**dict(zip(names, xs))))
        try:
            model, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
        except Exception as exc:
            raise ConversionError("onnx", _STAGE, f"{type(exc).__name__}: {one_line(exc)}\n\n{exc}") from exc
        keys = [output_key(i) for i in range(len(tfm.outputs))]
        _name_like_source(model, names, keys, list(tfm.outputs))
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        import onnx

        onnx.save(model, str(partial))
        os.replace(partial, path)
    return path


def _name_like_source(model: Any, input_names: list[str], keys: list[str], output_names: list[str]) -> None:
    """Graph inputs and outputs renamed to the source's (tf2onnx may add ``:0``; an internal value
    already called like a source output is renamed first), outputs in the source's order (tf2onnx
    lists them as TensorFlow flattens the signature's dict: by key)."""
    graph = model.graph
    by_key = {re.sub(r":\d+$", "", o.name): o for o in graph.output}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ConversionError("onnx", _STAGE, f"outputs {missing} missing from tf2onnx's graph ({list(by_key)})")
    renames = {vi.name: re.sub(r":\d+$", "", vi.name) for vi in graph.input
               if re.sub(r":\d+$", "", vi.name) in input_names}
    renames.update({by_key[k].name: new for k, new in zip(keys, output_names)})
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    for new in set(renames.values()):
        if new in taken and new not in renames:
            renames[new] = f"{new}__internal"
    for node in graph.node:
        node.input[:] = [renames.get(v, v) for v in node.input]
        node.output[:] = [renames.get(v, v) for v in node.output]
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.name = renames.get(vi.name, vi.name)
    ordered = {o.name: o for o in graph.output}
    copies = [type(o)() for o in graph.output]
    for c, name in zip(copies, output_names):
        c.CopyFrom(ordered[name])
    del graph.output[:]
    graph.output.extend(copies)
