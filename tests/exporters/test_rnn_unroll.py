"""Recurrent ONNX nodes unrolled into per-step arithmetic: the same numbers as onnxruntime's fused
kernels and as torch, for every layout / direction / state variant torch exports, plus the ONNX
variants torch never writes (an ``RNN`` node, a GRU with ``linear_before_reset=0``), and the nodes
that must be kept as they are."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from edgeport.exporters.onnx_graph import rewritten_file
from edgeport.exporters.onnx_rnn_unroll import RECURRENT_OPS, unroll, unroll_recurrent
from edgeport.exporters.torch_to_onnx import torch_to_onnx


class Recurrent(nn.Module):
    def __init__(self, kind: str, bidirectional: bool, batch_first: bool, with_state: bool) -> None:
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.kind, self.with_state = kind, with_state
        self.rnn = cls(5, 7, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
        self.states = 4 if bidirectional else 2

    def forward(self, seq, state):
        h0 = state.reshape(self.states, 1, 7)
        if self.with_state:
            y, hn = self.rnn(seq, (h0, torch.tanh(h0)) if self.kind == "lstm" else h0)
        else:
            y, hn = self.rnn(seq)
        return y, (hn[0] if self.kind == "lstm" else hn)


def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feed)


VARIANTS = list(itertools.product(["lstm", "gru"], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("kind,bidirectional,batch_first,with_state", VARIANTS,
                         ids=["-".join(str(x) for x in v) for v in VARIANTS])
def test_unrolled_torch_recurrences_match_the_fused_kernels(tmp_path, kind, bidirectional, batch_first, with_state):
    torch.manual_seed(0)
    module = Recurrent(kind, bidirectional, batch_first, with_state).eval()
    rng = np.random.default_rng(1)
    seq = rng.standard_normal((1, 6, 5) if batch_first else (6, 1, 5)).astype(np.float32)
    state = rng.standard_normal((1, module.states * 7)).astype(np.float32)
    path = tmp_path / "m.onnx"
    torch_to_onnx(module, (seq, state), ("seq", "state"), ("y", "hn"), path)
    model = onnx.load(str(path))
    fused = sum(n.op_type in RECURRENT_OPS for n in model.graph.node)
    result = unroll_recurrent(model)
    assert fused == 2 and len(result.rewritten) == 2 and not result.kept
    assert not any(n.op_type in RECURRENT_OPS for n in result.model.graph.node)
    feed = {"seq": seq, "state": state}
    want, got = _run(model, feed), _run(result.model, feed)
    with torch.no_grad():
        ref = [t.numpy() for t in module(torch.from_numpy(seq), torch.from_numpy(state))]
    for w, g, r in zip(want, got, ref):
        assert g.shape == w.shape
        assert np.abs(g - w).max() < 2e-6 and np.abs(g - r).max() < 2e-6
    # the fused weights are not kept beside their pre-transposed copies
    weights = sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer)
    unrolled = sum(numpy_helper.to_array(i).nbytes for i in result.model.graph.initializer)
    assert unrolled < 1.15 * weights


def _single(op: str, attrs: dict, hidden: int = 4, steps: int = 5, inputs: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, inputs)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((dirs, 2 * gates * hidden)).astype(np.float32), "B")]
    node = helper.make_node(op, ["X", "W", "R", "B", "", "H0"], ["Y", "Y_h"], hidden_size=hidden, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, 1, inputs]),
         helper.make_tensor_value_info("H0", TensorProto.FLOAT, [dirs, 1, hidden])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    feed = {"X": rng.standard_normal((steps, 1, inputs)).astype(np.float32),
            "H0": rng.standard_normal((dirs, 1, hidden)).astype(np.float32)}
    return model, feed


@pytest.mark.parametrize("op,attrs", [
    ("RNN", {}),
    ("RNN", {"direction": "bidirectional"}),
    ("RNN", {"direction": "reverse", "activations": ["Relu"]}),
    ("GRU", {"linear_before_reset": 0}),
    ("GRU", {"linear_before_reset": 0, "direction": "reverse"}),
    ("LSTM", {"direction": "reverse"}),
], ids=["rnn", "rnn-bidir", "rnn-reverse-relu", "gru-reset-after", "gru-reset-after-reverse", "lstm-reverse"])
def test_onnx_variants_torch_never_writes(op, attrs):
    model, feed = _single(op, attrs)
    result = unroll_recurrent(model)
    assert result.rewritten and not result.kept
    for w, g in zip(_run(model, feed), _run(result.model, feed)):
        assert g.shape == w.shape and np.abs(g - w).max() < 5e-6


@pytest.mark.parametrize("attrs,reason", [
    ({"clip": 1.0}, "clip"),
    ({"activations": ["Relu", "Tanh"]}, "activations"),
])
def test_nodes_that_cannot_be_unrolled_faithfully_are_kept_and_named(attrs, reason):
    model, _ = _single("GRU", attrs)
    result = unroll_recurrent(model)
    assert not result.rewritten and len(result.kept) == 1 and reason in result.kept[0]
    assert [n.op_type for n in result.model.graph.node] == ["GRU"]


def test_a_dynamic_sequence_length_is_kept():
    model, _ = _single("GRU", {})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "T"
    result = unroll_recurrent(model)
    assert not result.rewritten and "not static" in result.kept[0]


def test_the_rewritten_file_is_written_once_per_content(tmp_path):
    model, feed = _single("LSTM", {"direction": "bidirectional"})
    src = tmp_path / "lstm.onnx"
    onnx.save(model, str(src))
    first, notes = rewritten_file(src, tmp_path / "cache", [unroll])
    stamp = first.stat().st_mtime_ns
    again, notes2 = rewritten_file(src, tmp_path / "cache", [unroll])
    assert again == first and again.stat().st_mtime_ns == stamp and notes == notes2 == ["unrolled LSTM 0"]
    plain = tmp_path / "plain.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, ir_version=9), str(plain))
    assert rewritten_file(plain, tmp_path / "cache", [unroll]) == (plain, [])
