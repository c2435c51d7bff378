"""Rewrites for TF.js's kernels — grouped convolutions split per group, two-operand einsums as
batched MatMuls — give onnxruntime's numbers on the original graph."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from edgeport.exporters.onnx_tfjs_lower import lower_einsum, split_grouped_conv
from edgeport.exporters.torch_to_onnx import torch_to_onnx


def _run(model, feed):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feed)


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(12, 24, 3, padding=1, groups=12)
        self.nobias = nn.Conv1d(6, 6, 3, groups=3, bias=False)

    def forward(self, x, s):
        return self.depthwise(self.grouped(x)), self.nobias(s)


def test_grouped_convolutions_are_split_and_depthwise_ones_kept(tmp_path):
    torch.manual_seed(0)
    m = Convs().eval()
    rng = np.random.default_rng(0)
    x, s = rng.standard_normal((1, 8, 6, 5)).astype(np.float32), rng.standard_normal((1, 6, 9)).astype(np.float32)
    path = tmp_path / "c.onnx"
    torch_to_onnx(m, (x, s), ("x", "s"), ("y", "z"), path)
    model = onnx.load(str(path))
    want = _run(model, {"x": x, "s": s})
    lowered, notes = split_grouped_conv(model)
    assert len(notes) == 2 and all("grouped Conv" in n for n in notes)
    groups = [a.i for n in lowered.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert groups == [12]  # the depthwise conv is the only one left with groups
    for w, g in zip(want, _run(lowered, {"x": x, "s": s})):
        assert g.shape == w.shape and np.abs(g - w).max() < 1e-5


EQUATIONS = [("bp,bpc->bc", (3, 4), (3, 4, 5)), ("bf,fd->bfd", (2, 6), (6, 3)), ("ij,jk->ik", (4, 5), (5, 2)),
             ("bij,bjk->bki", (2, 3, 4), (2, 4, 5)), ("bik,bjk->bij", (2, 3, 4), (2, 5, 4)),
             ("ij,kj->", (3, 4), (2, 4)), ("abc,cd->dab", (2, 3, 4), (4, 5))]


class Einsum(nn.Module):
    def __init__(self, eq):
        super().__init__()
        self.eq = eq

    def forward(self, a, b):
        return torch.einsum(self.eq, a, b)


@pytest.mark.parametrize("eq,sa,sb", EQUATIONS, ids=[e[0] for e in EQUATIONS])
def test_two_operand_einsums_become_matmuls(tmp_path, eq, sa, sb):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
    path = tmp_path / "e.onnx"
    torch_to_onnx(Einsum(eq), (a, b), ("a", "b"), ("y",), path)
    model = onnx.load(str(path))
    if "Einsum" not in [n.op_type for n in model.graph.node]:
        pytest.skip(f"torch wrote {eq} without an Einsum node")
    want = _run(model, {"a": a, "b": b})[0]
    lowered, notes = lower_einsum(onnx.load(str(path)))
    assert len(notes) == 1 and notes[0].startswith("lowered Einsum") and eq in notes[0]
    assert "Einsum" not in [n.op_type for n in lowered.graph.node]
    got = _run(lowered, {"a": a, "b": b})[0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5
