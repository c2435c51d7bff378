"""Resizes onnx2tf gets wrong (align_corners, asymmetric) rewritten as exact gathers: the same
numbers as onnxruntime's Resize, for up- and down-sampling by integer and non-integer factors;
half-pixel resizes are left to tf.image.resize."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeport.exporters.onnx_resize_lower import lower_resize
from edgeport.exporters.torch_to_onnx import torch_to_onnx


class Resize(nn.Module):
    def __init__(self, size, mode, align_corners):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners

    def forward(self, x):
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners)


def _run(model, x):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


CASES = [((16, 16), "bilinear", True), ((12, 5), "bilinear", True), ((16, 16), "nearest", None),
         ((12, 5), "nearest", None), ((3, 11), "bilinear", True), ((16, 16), "bilinear", False)]


@pytest.mark.parametrize("size,mode,align_corners", CASES, ids=[f"{m}-{s[0]}x{s[1]}-{a}" for s, m, a in CASES])
def test_lowered_resize_matches_onnxruntime(tmp_path, size, mode, align_corners):
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 7)).astype(np.float32)
    module = Resize(size, mode, align_corners).eval()
    path = tmp_path / "r.onnx"
    torch_to_onnx(module, (x,), ("x",), ("y",), path)
    model = onnx.load(str(path))
    want = _run(model, x)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    lowered, notes = lower_resize(model)
    got = _run(lowered, x)
    assert got.shape == want.shape == ref.shape
    if align_corners is False:  # half-pixel: what tf.image.resize computes, kept
        assert notes == [] and [n.op_type for n in lowered.graph.node].count("Resize") == 1
        return
    assert len(notes) == 1 and "Resize" not in [n.op_type for n in lowered.graph.node]
    assert np.abs(got - want).max() < 1e-5 and np.abs(got - ref).max() < 1e-5
