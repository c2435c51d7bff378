"""torch module -> fp32 ONNX file: the first step of the ONNX, TFLite (onnx2tf) and TF.js paths."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import ConfigError, ConversionError

if TYPE_CHECKING:  # pragma: no cover
    from .base import ExportJob
    from .onnx_graph import Rewrite


#: the opset the TensorFlow paths (TFLite, TF.js) re-export at when the graph holds ``Erf``: at 18
#: torch writes exact GELU as an Erf chain that TFLite's builtins refuse; from opset 20 it is one
#: ``Gelu`` node, which onnx2tf maps to TFLite's own GELU kernel (exact, not the tanh form)
GELU_OPSET = 20


def source_onnx(job: "ExportJob", opset: int | None = None) -> Path:
    """The job's model as an fp32 ONNX file: the user's ``.onnx`` source as given, a TensorFlow
    source through tf2onnx, or the job's (possibly compressed) module exported once into the job's
    scratch folder.

    Shared by the ONNX, TFLite (onnx2tf) and TF.js paths; the file is kept per module and opset in
    the call's shared scratch folder under the module's digest (its class, weights and the
    example input shapes), so ``--target all``, the fp32 size reference and repeated calls with one
    cache folder export once, and a compressed module and the dense source never share a file.
    """
    if job.source.tensorflow is not None and job.module is None:  # tf2onnx from the SavedModel
        from ._tf_to_onnx import tf_source_onnx

        return tf_source_onnx(job, opset)
    if job.module is None:
        if job.source.onnx_path is None:
            raise ConfigError("nothing to export: the source has neither a module nor an ONNX file")
        return Path(job.source.onnx_path)
    opset = int(opset or getattr(job.options, "opset", 18))
    key = module_digest(job.module, job.source.input_specs, job.source.output_names)
    path = Path(job.shared_dir or job.workdir) / f"source-{key}-opset{opset}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with job.progress.step(f"torch→ONNX (dynamo exporter, opset {opset})"):
            torch_to_onnx(job.module, job.source.example_inputs, job.source.input_names,
                          job.source.output_names, partial, opset=opset)
        os.replace(partial, path)
    return path


def module_digest(module: Any, specs: Sequence[Any], output_names: Sequence[str]) -> str:
    """What makes two exports of a module the same file: its class, every parameter and buffer
    (names, dtypes, shapes, bytes) and the exported input specs and output names."""
    import torch

    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    h.update(repr([(s.name, tuple(s.shape), s.dtype) for s in specs]).encode())
    h.update(repr(list(output_names)).encode())
    state = module.state_dict() if hasattr(module, "state_dict") else {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            h.update(f"{name}={value!r}".encode())
            continue
        t = value.detach().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        try:
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # quantized or exotic storage: its values' text
            h.update(repr(t.tolist()).encode())
    return h.hexdigest()[:24]


def source_onnx_for_tensorflow(job: "ExportJob", builtin_gelu: bool = True,
                               extra_rewrites: Sequence["Rewrite"] = ()) -> tuple[Path, list[str]]:
    """The ONNX file the TensorFlow paths (onnx2tf) start from, and notes on how it was prepared.

    - Re-exported at :data:`GELU_OPSET` when the graph holds exact GELU and the format has a
      builtin GELU kernel (TFLite). TF.js has none: onnx2tf writes a ``Gelu`` node as TensorFlow's
      exact gelu, whose ``Erfc`` the TF.js converter lacks, while the opset-18 Erf chain maps to
      TF.js's own ``Erf``; ``builtin_gelu=False`` keeps that.
    - Graph rewrites onnx2tf needs, each exact (see their modules): recurrent nodes unrolled
      (:mod:`.onnx_rnn_unroll`), graphs with resizes it only honours at opset 17 taken down to it
      (:mod:`.onnx_resize_opset`), then the format's ``extra_rewrites``.
    """
    from .onnx_graph import rewritten_file
    from .onnx_resize_opset import resize_at_opset17
    from .onnx_rnn_unroll import unroll

    path = source_onnx(job)
    if job.module is not None and builtin_gelu:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        if any(n.op_type == "Erf" for n in graph.node):
            path = source_onnx(job, GELU_OPSET)
    return rewritten_file(path, Path(job.shared_dir or job.workdir), [unroll, *extra_rewrites, resize_at_opset17])


def torch_to_onnx(module: Any, example_inputs: Sequence[np.ndarray], input_names: Sequence[str],
                  output_names: Sequence[str], path: Path, opset: int = 18) -> Path:
    """Export with the dynamo exporter, weights inside the file (no .onnx.data side file).

    The batch axis stays static at the example's size (1): edge runtimes run one sample at a time
    and static shapes convert more reliably for TFLite/TF.js.
    """
    import logging

    import torch

    # torch's ONNX registry warns about torchvision ops it cannot register; irrelevant here
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    args = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in example_inputs)
    module = _without_name_clashes(module.eval())
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=list(input_names),
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
    except Exception as exc:
        from .failures import torch_onnx_failure

        raise ConversionError("onnx", "torch→ONNX", torch_onnx_failure(exc)) from exc
    _tidy(path, list(output_names))
    return path


def _without_name_clashes(module: Any) -> Any:
    """``module``, or a wrapper that hands it its inputs positionally when a ``forward()`` argument
    is named like one of its attributes (``forward(self, signal, meta)`` beside ``self.meta =
    nn.Linear(...)``): torch's decomposition step then resolves the parameter ``meta.weight``
    against the input and fails ("references nonexistent attribute weight of meta")."""
    import inspect

    import torch

    try:
        params = set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return module
    owned = {name.split(".")[0] for name, _ in module.named_parameters()}
    owned |= {name.split(".")[0] for name, _ in module.named_buffers()}
    owned |= {name for name, _ in module.named_children()}
    if not params & owned:
        return module

    class Positional(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(*inputs)

    return Positional(module).eval()


def _tidy(path: Path, output_names: list[str]) -> None:
    """Name the graph outputs like the source's and drop debugging-only data.

    Output names are set here rather than by the exporter: asking the exporter for an output
    named like an internal value (an ``nn.Embedding`` called ``embedding``, say) yields a graph
    with a duplicate name that onnxruntime refuses. Clashing internal values are renamed first.
    An output that is not a value of its own — a graph input returned as is, a constant, the same
    tensor returned twice — gets an ``Identity`` node: renaming it would rename the input or merge
    two outputs into one.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    if len(graph.output) != len(output_names):
        raise ConversionError("onnx", "output naming", f"the graph has {len(graph.output)} outputs, "
                              f"the source names {len(output_names)}")
    inputs = {i.name for i in graph.input}
    passthrough = {}  # the exporter returns an input as Identity(x) -> x: a second definition of x
    for node in graph.node:
        for k, v in enumerate(node.output):
            if v in inputs:
                node.output[k] = passthrough[v] = f"{v}__passthrough"
    current = [passthrough.get(o.name, o.name) for o in graph.output]
    fixed = inputs | {i.name for i in graph.initializer}
    renames, copies = {}, []
    for old, new in zip(current, output_names):
        if old == new:
            continue
        if old in fixed or current.count(old) > 1:
            copies.append((old, new))
        else:
            renames[old] = new
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    clashes = {new: f"{new}__internal" for new in output_names
               if new in taken and new not in renames and new not in current}
    mapping = {**clashes, **renames}
    if mapping:
        for graph_ in _graphs(graph):
            for node in graph_.node:
                node.input[:] = [mapping.get(v, v) for v in node.input]
                node.output[:] = [mapping.get(v, v) for v in node.output]
        for init in graph.initializer:
            init.name = mapping.get(init.name, init.name)
    for old, new in copies:
        graph.node.append(helper.make_node("Identity", [mapping.get(old, old)], [new], name=f"{new}__output"))
    for vi, new in zip(graph.output, output_names):
        vi.name = new
    del graph.value_info[:]
    for graph_ in _graphs(graph):
        for node in graph_.node:
            del node.metadata_props[:]
            node.doc_string = ""
    onnx.save(model, str(path))


def _graphs(graph: Any) -> list[Any]:
    """A graph and every subgraph (If/Loop bodies) inside it."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                out.extend(_graphs(attr.g))
            for g in attr.graphs:
                out.extend(_graphs(g))
    return out
