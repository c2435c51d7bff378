"""align_corners / asymmetric resizes: the graph goes down to opset 17, where onnx2tf honours the
coordinate mode, with the same numbers in onnxruntime; graphs that cannot go down are kept."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch.nn as nn

from edgeport.exporters.onnx_resize_opset import resize_at_opset17
from edgeport.exporters.torch_to_onnx import torch_to_onnx


def _run(model, x):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


class Up(nn.Module):
    def __init__(self, gelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.act = nn.GELU() if gelu else nn.Identity()

    def forward(self, x):
        return self.act(self.up(self.conv(x)).mean(dim=(2, 3), keepdim=True))


def test_align_corners_graph_goes_to_opset_17_with_the_same_numbers(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 7)).astype(np.float32)
    path = tmp_path / "u.onnx"
    torch_to_onnx(Up().eval(), (x,), ("x",), ("y",), path)
    model = onnx.load(str(path))
    lowered, notes = resize_at_opset17(onnx.load(str(path)))
    assert [o.version for o in lowered.opset_import if o.domain == ""] == [17]
    assert notes and "opset 17" in notes[0]
    assert np.abs(_run(lowered, x) - _run(model, x)).max() < 1e-6


def test_a_graph_with_a_newer_op_is_kept_and_named(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 7)).astype(np.float32)
    path = tmp_path / "g.onnx"
    torch_to_onnx(Up(gelu=True).eval(), (x,), ("x",), ("y",), path, opset=20)
    model = onnx.load(str(path))
    assert "Gelu" in [n.op_type for n in model.graph.node]
    kept, notes = resize_at_opset17(model)
    assert kept is model and notes[0].startswith("kept opset 20")


def test_half_pixel_resizes_are_left_alone(tmp_path):
    x = np.zeros((1, 3, 4, 4), np.float32)
    m = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
    path = tmp_path / "h.onnx"
    torch_to_onnx(m, (x,), ("x",), ("y",), path)
    model = onnx.load(str(path))
    assert resize_at_opset17(model) == (model, [])
