"""ONNX ``LSTM`` / ``GRU`` / ``RNN`` nodes rewritten as their per-step arithmetic.

Each recurrent node with constant weights and a static sequence length becomes the same equations
(ONNX operator spec) written out step by step: one ``MatMul`` of the whole input sequence by the
input weights, then per step a ``MatMul`` by the recurrent weights, the gate activations and the
state update; outputs ``Y`` / ``Y_h`` / ``Y_c`` keep their names, shapes and layouts. Nothing is
approximated, so the rewrite is faithful to the float arithmetic.

Why: onnx2tf handles the fused node badly. It becomes a Keras recurrent layer (which refuses
some state inputs: an LSTM without initial state failed to convert) or a ``WHILE`` loop that
TensorFlow's full-integer calibrator crashes on (SIGSEGV), and TF.js fuses its MatMuls with a
rank-3 bias it then cannot run. Unrolled, every weight is a plain ``MatMul`` operand that each
converter and quantizer knows. The TFLite and TF.js paths use it; the ONNX target keeps the fused
node, which onnxruntime runs with its own recurrent kernels (unrolled there, a GRU measured 27x
slower and larger than fused). Nodes this module cannot rewrite faithfully (peepholes, ``clip``,
unusual activations, a dynamic sequence length or ``sequence_lens``) are kept as they are and
named in the returned notes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .onnx_graph import attrs, constants, replace_nodes, static_shapes

RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
#: gates per op, in the ONNX weight order (LSTM: i o f c; GRU: z r h; RNN: one)
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
#: the names of the nodes and values a rewrite makes start with this, the node's index and "/"
UNROLLED_PREFIX = "unrolled"
#: a sequence longer than this stays a recurrent node: the unrolled graph grows with every step
MAX_STEPS = 512


@dataclass
class Unrolled:
    model: Any                                   # onnx.ModelProto
    rewritten: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # "<op> <name>: <reason>"


def recurrent_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type in RECURRENT_OPS]


def unroll(model: Any) -> tuple[Any, list[str]]:
    """The rewrite as :func:`.onnx_graph.rewritten_file` takes it: (model, notes)."""
    result = unroll_recurrent(model)
    return result.model, [f"unrolled {r}" for r in result.rewritten] + [f"kept {k}" for k in result.kept]


def unroll_recurrent(model: Any) -> Unrolled:
    """A copy of ``model`` with every rewritable recurrent node unrolled."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    consts = constants(graph)
    shapes = static_shapes(out)
    result = Unrolled(out)

    def rewrite(idx: int, node: Any) -> list[Any] | None:
        if node.op_type not in RECURRENT_OPS:
            return None
        label = f"{node.op_type} {node.name or idx}"
        reason = _why_not(node, consts, shapes)
        if reason:
            result.kept.append(f"{label}: {reason}")
            return None
        builder = _Builder(graph, f"{UNROLLED_PREFIX}{idx}/")
        _emit(node, consts, shapes, builder)
        result.rewritten.append(label)
        return builder.nodes

    replace_nodes(graph, rewrite)
    return result


# -- what can be rewritten ------------------------------------------------------------------------
def _input(node: Any, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def _why_not(node: Any, consts: dict[str, np.ndarray], shapes: dict[str, tuple]) -> str:
    a = attrs(node)
    op = node.op_type
    if any(_input(node, i) not in consts for i in (1, 2)) or (_input(node, 3) and _input(node, 3) not in consts):
        return "weights are not constants"
    if a.get("clip") is not None:
        return "clip is set"
    if a.get("input_forget", 0):
        return "input_forget is set"
    dirs = 2 if a.get("direction", "forward") == "bidirectional" else 1
    acts = a.get("activations")
    if acts is not None and [s.lower() for s in acts] != [s.lower() for s in _DEFAULT_ACTS[op] * dirs]:
        if not (op == "RNN" and all(s.lower() in ("tanh", "relu", "sigmoid") for s in acts)):
            return f"activations {acts}"
    if a.get("activation_alpha") or a.get("activation_beta"):
        return "activation alpha/beta"
    if op == "LSTM" and _input(node, 7) and not np.all(consts.get(_input(node, 7), 1) == 0):
        return "peephole weights"
    shape = shapes.get(node.input[0])
    if shape is None or len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        return "the input's shape is not static"
    steps = shape[1] if a.get("layout", 0) else shape[0]
    if steps > MAX_STEPS:
        return f"{steps} steps (more than {MAX_STEPS})"
    lens = _input(node, 4)
    if lens and not (lens in consts and np.all(consts[lens] == steps)):
        return "sequence_lens varies"
    return ""


# -- the rewrite ----------------------------------------------------------------------------------
class _Builder:
    """New nodes and initializers with names under one prefix."""

    def __init__(self, graph: Any, prefix: str) -> None:
        self.graph, self.prefix, self.nodes, self._n = graph, prefix, [], 0
        self._small: dict[tuple, str] = {}  # step indices, split sizes, axes: one copy each

    def name(self, what: str) -> str:
        self._n += 1
        return f"{self.prefix}{what}{self._n}"

    def const(self, value: np.ndarray, what: str = "c") -> str:
        from onnx import numpy_helper

        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes()) if value.nbytes <= 64 else None
        if key is not None and key in self._small:
            return self._small[key]
        name = self.name(what)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        if key is not None:
            self._small[key] = name
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, out: list[str] | None = None, **attrs: Any):
        import onnx

        outs = out or [self.name("v") for _ in range(n_out)]
        self.nodes.append(onnx.helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if len(outs) == 1 else outs


def _emit(node: Any, consts: dict[str, np.ndarray], shapes: dict[str, tuple], b: _Builder) -> None:
    a = attrs(node)
    op, hidden, layout = node.op_type, int(a["hidden_size"]), int(a.get("layout", 0))
    direction = a.get("direction", "forward")
    dirs = [0, 1] if direction == "bidirectional" else [1 if direction == "reverse" else 0]
    gates = _GATES[op]
    W, R = consts[node.input[1]], consts[node.input[2]]
    B = consts[_input(node, 3)] if _input(node, 3) else np.zeros((len(dirs), 2 * gates * hidden), W.dtype)
    shape = shapes[node.input[0]]
    steps, batch = (shape[1], shape[0]) if layout else (shape[0], shape[1])
    x = b.op("Transpose", [node.input[0]], perm=[1, 0, 2]) if layout else node.input[0]  # [T, B, I]
    acts = [s.capitalize() if s.lower() != "relu" else "Relu" for s in (a.get("activations") or [])]
    init_h, init_c = _input(node, 5), _input(node, 6)
    ys, hs, cs = [], [], []
    for k, d in enumerate(dirs):
        wb, rb = B[k, :gates * hidden], B[k, gates * hidden:]
        lbr = op == "GRU" and int(a.get("linear_before_reset", 0))
        in_bias = wb + (np.concatenate([rb[:2 * hidden], np.zeros(hidden, rb.dtype)]) if lbr else rb)
        xw = b.op("Add", [b.op("MatMul", [x, b.const(W[k].T.copy(), "w")]), b.const(in_bias, "b")])
        h = _initial(b, init_h, k, layout, batch, hidden, W.dtype)
        c = _initial(b, init_c, k, layout, batch, hidden, W.dtype) if op == "LSTM" else None
        rt = R[k].T.copy()
        # the recurrent weights are one initializer per direction, shared by every step
        if op == "GRU" and not lbr:
            rec = (b.const(rt[:, :2 * hidden].copy(), "rzr"), b.const(rt[:, 2 * hidden:].copy(), "rh"))
        else:
            rec = (b.const(rt, "r"),)
        rbh = b.const(rb[2 * hidden:], "rbh") if lbr else None
        steps_out: dict[int, str] = {}
        order = range(steps) if d == 0 else range(steps - 1, -1, -1)
        act = acts[k * (1 if op == "RNN" else 0):] or []
        for t in order:
            xt = b.op("Gather", [xw, b.const(np.array(t, np.int64), "t")], axis=0)  # [B, G*H]
            if op == "LSTM":
                h, c = _lstm_step(b, xt, h, c, rec[0], hidden)
            elif op == "GRU":
                h = _gru_step(b, xt, h, rec, rbh, hidden)
            else:
                h = b.op((act[0] if act else "Tanh"), [b.op("Add", [xt, b.op("MatMul", [h, rec[0]])])])
            steps_out[t] = h
        axis0 = b.const(np.array([0], np.int64), "axes")
        ys.append(b.op("Concat", [b.op("Unsqueeze", [steps_out[t], axis0]) for t in range(steps)], axis=0))
        hs.append(h)
        cs.append(c)
    _outputs(node, b, ys, hs, cs, layout)


def _initial(b: _Builder, name: str, k: int, layout: int, batch: int, hidden: int, dtype: Any) -> str:
    if not name:
        return b.const(np.zeros((batch, hidden), dtype), "zeros")
    return b.op("Gather", [name, b.const(np.array(k, np.int64), "dir")], axis=1 if layout else 0)


def _split(b: _Builder, x: str, parts: int, hidden: int) -> list[str]:
    if parts == 1:
        return [x]
    return b.op("Split", [x, b.const(np.full(parts, hidden, np.int64), "split")], n_out=parts, axis=1)


def _lstm_step(b: _Builder, xt: str, h: str, c: str, rt: str, hidden: int) -> tuple[str, str]:
    g = b.op("Add", [xt, b.op("MatMul", [h, rt])])
    i, o, f, cand = _split(b, g, 4, hidden)
    i, o, f, cand = b.op("Sigmoid", [i]), b.op("Sigmoid", [o]), b.op("Sigmoid", [f]), b.op("Tanh", [cand])
    c_new = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, cand])])
    return b.op("Mul", [o, b.op("Tanh", [c_new])]), c_new


def _gru_step(b: _Builder, xt: str, h: str, rec: tuple[str, ...], rbh: str | None, hidden: int) -> str:
    """``rec``: the recurrent weights, one [H, 3H] initializer (with ``rbh``: linear before
    reset), or [H, 2H] for z/r and [H, H] for the candidate."""
    xz, xr, xh = _split(b, xt, 3, hidden)
    if rbh is not None:  # h~ = tanh(x Wh + r * (h Rh + Rbh))
        hz, hr, hh = _split(b, b.op("MatMul", [h, rec[0]]), 3, hidden)
        z, r = b.op("Sigmoid", [b.op("Add", [xz, hz])]), b.op("Sigmoid", [b.op("Add", [xr, hr])])
        n = b.op("Tanh", [b.op("Add", [xh, b.op("Mul", [r, b.op("Add", [hh, rbh])])])])
    else:    # h~ = tanh(x Wh + (r * h) Rh + Rbh), Rbh already in the input bias
        hz, hr = _split(b, b.op("MatMul", [h, rec[0]]), 2, hidden)
        z, r = b.op("Sigmoid", [b.op("Add", [xz, hz])]), b.op("Sigmoid", [b.op("Add", [xr, hr])])
        hh = b.op("MatMul", [b.op("Mul", [r, h]), rec[1]])
        n = b.op("Tanh", [b.op("Add", [xh, hh])])
    # h' = (1 - z) * n + z * h  ==  n + z * (h - n)
    return b.op("Add", [n, b.op("Mul", [z, b.op("Sub", [h, n])])])


def _outputs(node: Any, b: _Builder, ys: list[str], hs: list[str], cs: list[str | None], layout: int) -> None:
    """Y [T, D, B, H] (layout 1: [B, T, D, H]), Y_h / Y_c [D, B, H] (layout 1: [B, D, H])."""
    names = list(node.output) + [""] * (3 - len(node.output))
    ax1 = b.const(np.array([1], np.int64), "axes")
    ax0 = b.const(np.array([0], np.int64), "axes")
    if names[0]:
        stacked = b.op("Concat", [b.op("Unsqueeze", [y, ax1]) for y in ys], axis=1)
        if layout:
            b.op("Transpose", [stacked], out=[names[0]], perm=[2, 0, 1, 3])
        else:
            b.op("Identity", [stacked], out=[names[0]])
    for out, states in ((names[1], hs), (names[2], cs)):
        if not out:
            continue
        stacked = b.op("Concat", [b.op("Unsqueeze", [s, ax0]) for s in states], axis=0)
        if layout:
            b.op("Transpose", [stacked], out=[out], perm=[1, 0, 2])
        else:
            b.op("Identity", [stacked], out=[out])
