"""torch module -> fp32 ONNX file: the first step of the ONNX, TFLite (onnx2tf) and TF.js paths."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError


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
    module = module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=list(input_names),
                              output_names=list(output_names), opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
    except Exception as exc:
        raise ConversionError("onnx", "torch.onnx.export", f"{type(exc).__name__}: {exc}") from exc
    _strip_debug_info(path)
    return path


def _strip_debug_info(path: Path) -> None:
    """Drop what only helps debugging the exporter: intermediate value_info (stale entries break
    onnxruntime's quantizer shape inference on dynamo graphs) and per-node metadata (torch stack
    traces and module paths — kilobytes per node, which on a small model is a large share of the
    file and would hide the real effect of quantization on size)."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    for graph in _graphs(model.graph):
        for node in graph.node:
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
