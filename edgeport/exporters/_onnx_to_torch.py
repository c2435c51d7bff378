"""ONNX source -> torch module with onnx2torch, so the CoreML path (coremltools' torch frontend)
can take it: coremltools 9 has no ONNX frontend.

Two exact preparations, each recorded: ``Reshape(allowzero=1)`` with a constant target shape that
holds no 0 becomes ``allowzero=0`` (the two mean the same there; torch's dynamo exporter writes
``allowzero=1`` on every reshape and onnx2torch refuses it), and a graph with an op onnx2torch has
no converter for at its opset (``ReduceMean`` at 18) goes down to opset 17 with ONNX's own version
converter. The module is then checked against onnxruntime on the example input; anything else
onnx2torch cannot take is a ConversionError for this target.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError, MissingDependencyError, one_line

_STAGE = "ONNX→torch (onnx2torch)"
#: largest |torch - onnxruntime| on the example input, relative to the output's range
CHECK_REL_TOL = 1e-3


def import_onnx2torch() -> Any:
    """onnx2torch imports torchvision for its NMS / RoiAlign converters only. The registry's
    torchvision wheels are CUDA builds that do not import beside the CPU torch, so when it is
    absent a stand-in satisfies that import alone (and is removed again: other libraries probe
    for torchvision); converting a graph with those two ops then fails by name."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    added = []
    if importlib.util.find_spec("torchvision") is None:
        for name in ("torchvision", "torchvision.ops"):
            mod = types.ModuleType(name)
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
            mod.__doc__ = "edgeport stand-in: torchvision is not installed (onnx2torch's NMS/RoiAlign need it)"
            sys.modules[name] = mod
            added.append(name)
        sys.modules["torchvision"].ops = sys.modules["torchvision.ops"]  # type: ignore[attr-defined]
        sys.modules["torchvision.ops"].roi_align = None  # type: ignore[attr-defined]
    try:
        import onnx2torch
    except ImportError as exc:
        raise MissingDependencyError("onnx2torch", hint=f"import failed: {exc}") from exc
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return onnx2torch


def onnx_module(path: Path, feed: dict[str, np.ndarray], input_names: Sequence[str],
                work: Path) -> tuple[Any, list[str]]:
    """(torch module computing the ONNX graph, notes on how it was prepared)."""
    import onnx

    from .onnx_graph import rewritten_file
    from .onnx_rnn_unroll import unroll

    o2t = import_onnx2torch()
    # onnx2torch has no GRU / LSTM / RNN converter: the exact unrolling the TensorFlow paths use
    prepared, notes = rewritten_file(path, work, [unroll])
    model = onnx.load(str(prepared))
    notes = list(notes) + _static_reshapes(model)
    try:
        module = o2t.convert(model)
    except Exception as first:
        module = _at_opset17(o2t, model, first, notes)
    module = module.eval()
    _check(module, path, feed, input_names)
    return module, notes


def _at_opset17(o2t: Any, model: Any, first: Exception, notes: list[str]) -> Any:
    from onnx import version_converter

    from .onnx_resize_opset import _checked

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    reason = f"{type(first).__name__}: {one_line(first)}"
    if opset <= 17:
        raise ConversionError("coreml", _STAGE, reason) from first
    try:
        module = o2t.convert(_checked(version_converter.convert_version(model, 17)))
    except Exception as exc:
        raise ConversionError("coreml", _STAGE, f"{reason} (and at opset 17: {type(exc).__name__}: "
                              f"{one_line(exc)})") from exc
    notes.append(f"converted from opset {opset} to 17 for onnx2torch ({reason})")
    return module


def _static_reshapes(model: Any) -> list[str]:
    from onnx import numpy_helper

    consts = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        for a in node.attribute:
            if a.name == "allowzero" and a.i == 1 and (numpy_helper.to_array(consts[node.input[1]]) != 0).all():
                a.i = 0
                changed += 1
    return [f"{changed} Reshape(allowzero=1) with constant, zero-free shapes read as allowzero=0"] if changed else []


def _check(module: Any, path: Path, feed: dict[str, np.ndarray], input_names: Sequence[str]) -> None:
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, {n: feed[n] for n in input_names})
    try:
        with torch.no_grad():
            got = module(*(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in input_names))
    except Exception as exc:  # a converter that builds but cannot run (NMS without torchvision...)
        raise ConversionError("coreml", _STAGE, f"the converted module does not run: {type(exc).__name__}: "
                              f"{one_line(exc)}") from exc
    got = [got] if isinstance(got, torch.Tensor) else list(got)
    for i, (g, w) in enumerate(zip(got, want)):
        g = g.detach().numpy().astype(np.float64)
        w = np.asarray(w, dtype=np.float64)
        span = float(np.ptp(w)) or 1.0
        if g.shape != w.shape or float(np.abs(g - w).max(initial=0.0)) / span > CHECK_REL_TOL:
            raise ConversionError("coreml", _STAGE, f"the torch module differs from onnxruntime on output {i} "
                                  f"(shape {list(g.shape)} vs {list(w.shape)})")
