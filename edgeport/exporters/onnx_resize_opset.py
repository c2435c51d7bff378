"""Graphs with ``align_corners`` / ``asymmetric`` resizes taken down to opset 17 for onnx2tf.

onnx2tf honours a ``Resize`` node's coordinate mode only for models at opset 17 or below; above it,
every resize becomes ``tf.image.resize`` with half-pixel centres. ``align_corners=True`` bilinear
upsampling (``torch.nn.Upsample(..., align_corners=True)``) then came out at SQNR 10 dB alone and
35 dB inside a U-Net. ONNX's own version converter rewrites the graph at opset 17 with the same
semantics (opset 18 changed how reductions take their axes, not what they compute); onnx2tf then
maps the resize to TensorFlow's ``align_corners`` kernel. A graph that cannot go down (an op newer
than opset 17, such as ``Gelu``) is kept and named in the notes.

(An exact rewrite of the resize into gathers was tried first: exact in onnxruntime, it was
mis-laid-out by onnx2tf when a tensor's channel count equals its height.)
"""
from __future__ import annotations

from typing import Any

#: coordinate modes onnx2tf maps correctly only at opset <= 17
_MODES = ("align_corners", "asymmetric")
TARGET_OPSET = 17


def resize_at_opset17(model: Any) -> tuple[Any, list[str]]:
    from onnx import version_converter

    from .onnx_graph import attrs

    resizes = [n for n in model.graph.node if n.op_type == "Resize"
               and attrs(n).get("coordinate_transformation_mode", "half_pixel") in _MODES]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not resizes or opset <= TARGET_OPSET:
        return model, []
    try:
        lowered = _checked(version_converter.convert_version(model, TARGET_OPSET))
    except Exception as exc:  # noqa: BLE001  (an op with no opset-17 form: keep the graph)
        return model, [f"kept opset {opset}: {len(resizes)} align_corners/asymmetric Resize may be converted "
                       f"as half-pixel by onnx2tf (no opset-17 form: {str(exc).splitlines()[0][:120]})"]
    return lowered, [f"converted to opset {TARGET_OPSET} for onnx2tf's {len(resizes)} "
                     "align_corners/asymmetric Resize"]


def _checked(model: Any) -> Any:
    """The converter's output made valid and checked. Its reduction adapters move ``axes`` back to
    an attribute but keep opset 18's ``noop_with_empty_axes``, which only ``ReduceSum`` has at 17:
    at its default (0) it is dropped; set, the graph cannot go down."""
    import onnx

    for node in model.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            for a in list(node.attribute):
                if a.name == "noop_with_empty_axes":
                    if a.i:
                        raise ValueError(f"{node.op_type} with noop_with_empty_axes=1")
                    node.attribute.remove(a)
    onnx.checker.check_model(model, full_check=True)
    return model
