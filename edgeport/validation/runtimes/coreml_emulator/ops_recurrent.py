"""Recurrent MIL ops: ``lstm``, ``gru``, ``rnn`` (iOS15 forms; iOS17 adds fp16, iOS18 gru adds
``reset_after`` / ``input_bias``).

Layouts, as coremltools defines and tests them: ``x`` is [seq, batch, input]; LSTM gates are
stacked ``[input, forget, output, cell]`` ("ifoz") with one bias = b_ih + b_hh; GRU gates are
``[reset, output(new), update]``. A ``reverse`` single-direction layer reads the sequence
backwards and emits its outputs in the order it produced them; a ``bidirectional`` LSTM emits
``[forward, backward]`` per time step in the input's time order. Without ``output_sequence``
the sequence output is the final state, shape [1, batch, D*H].

Products are one row at a time (stacked [.., 1, K] matmuls) so a sample's result does not depend
on how many samples share the call (see ops_conv). In a FLOAT16 program the carried state is
rounded to fp16 after every step, as the program stores it (and as coremltools' unrolled
``while_loop`` form of the same layer rounds it).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, f32, op


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


# "scaled_tanh" with its default alpha = beta = 1 is tanh (coremltools' own references treat it so)
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "scaled_tanh": np.tanh,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "linear": lambda x: x,
    "hard_sigmoid": lambda x: np.clip(np.float32(0.2) * x + np.float32(0.5), 0, 1),
    "sigmoid_hard": lambda x: np.clip(np.float32(0.2) * x + np.float32(0.5), 0, 1),
}


def _activation(a: Args, key: str, default: str) -> Callable[[np.ndarray], np.ndarray]:
    name = (a.str(key, default) or default).lower()
    if name not in _ACTIVATIONS:
        raise RuntimeLoadError(f"{a.op_type}: activation {name!r} is not supported by the emulator")
    return _ACTIVATIONS[name]


def _rows(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` for x [..., K], w [N, K], row by row."""
    return np.matmul(x[..., None, :], w.T)[..., 0, :]


def _rounder(a: Args) -> Callable[[np.ndarray], np.ndarray]:
    if not a.fp16:
        return lambda v: v
    from .fp16 import round_fp16

    return round_fp16


def _check(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, gates: int, op_type: str) -> int:
    if x.ndim != 3 or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise RuntimeLoadError(f"{op_type}: x must be [seq, batch, input] and weights 2-D")
    hidden = w_hh.shape[1]
    if w_hh.shape[0] != gates * hidden or w_ih.shape != (gates * hidden, x.shape[2]):
        raise RuntimeLoadError(f"{op_type}: weights {w_ih.shape} / {w_hh.shape} do not fit input {x.shape}")
    return hidden


def _state(value: object, batch: int, width: int, ctx: Context) -> np.ndarray:
    """An initial state as [batch, width]. In a batched run of a batch-1 program a constant
    one-sample state (coremltools' zeros when no h0 is given) stands for every sample."""
    v = f32(value).reshape(-1, width)
    if v.shape[0] == 1 and batch > 1 and ctx.batch:
        v = np.repeat(v, batch, axis=0)
    if v.shape[0] != batch:
        raise RuntimeLoadError(f"initial state of {v.shape[0]} samples for a batch of {batch}")
    return v


def _vector(a: Args, key: str, size: int) -> np.ndarray:
    v = a.get(key)
    return np.zeros(size, np.float32) if v is None else f32(v).reshape(size)


# ---- LSTM ---------------------------------------------------------------------------------------
def _lstm_direction(x, weights, state, acts, clip, rnd):  # noqa: ANN001, ANN202
    """One direction over ``x`` (already in processing order): (outputs [s, b, H], h, c).
    ``weights`` is (w_ih, w_hh, bias, peephole), ``state`` the initial (h, c)."""
    w_ih, w_hh, bias, peep = weights
    h, c = state
    rec, cell, out_act = acts
    hidden = w_hh.shape[1]
    pre = _rows(x, w_ih) + bias  # every step's input projection at once
    p_i, p_f, p_o = (peep[:hidden], peep[hidden:2 * hidden], peep[2 * hidden:])
    outs = np.empty(x.shape[:2] + (hidden,), np.float32)
    for t in range(x.shape[0]):
        g = pre[t] + _rows(h, w_hh)
        i = rec(g[:, :hidden] + c * p_i)
        f = rec(g[:, hidden:2 * hidden] + c * p_f)
        z = cell(g[:, 3 * hidden:])
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        c = rnd(c)
        o = rec(g[:, 2 * hidden:3 * hidden] + c * p_o)
        h = rnd(o * out_act(c))
        outs[t] = h
    return outs, h, c


@op("lstm")
def _lstm(a: Args, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w_ih, w_hh = f32(a["x"]), f32(a["weight_ih"]), f32(a["weight_hh"])
    hidden = _check(x, w_ih, w_hh, 4, "lstm")
    direction = a.str("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise RuntimeLoadError(f"lstm: direction {direction!r} is not supported")
    acts = (_activation(a, "recurrent_activation", "sigmoid"), _activation(a, "cell_activation", "tanh"),
            _activation(a, "activation", "tanh"))
    clip = a.get("clip")
    clip = None if clip is None else np.float32(a.float("clip"))
    rnd = _rounder(a)
    dirs = 2 if direction == "bidirectional" else 1
    h0 = _state(a["initial_h"], x.shape[1], dirs * hidden, ctx)
    c0 = _state(a["initial_c"], x.shape[1], dirs * hidden, ctx)
    fwd = (w_ih, w_hh, _vector(a, "bias", 4 * hidden), _vector(a, "peephole", 3 * hidden))
    if direction != "bidirectional":
        seq = x if direction == "forward" else x[::-1]
        outs, h, c = _lstm_direction(seq, fwd, (h0, c0), acts, clip, rnd)
    else:
        wb_ih, wb_hh = a.get("weight_ih_back"), a.get("weight_hh_back")
        if wb_ih is None or wb_hh is None:
            raise RuntimeLoadError("lstm: a bidirectional lstm needs weight_ih_back and weight_hh_back")
        _check(x, f32(wb_ih), f32(wb_hh), 4, "lstm")
        back = (f32(wb_ih), f32(wb_hh), _vector(a, "bias_back", 4 * hidden), _vector(a, "peephole_back", 3 * hidden))
        out_f, h_f, c_f = _lstm_direction(x, fwd, (h0[:, :hidden], c0[:, :hidden]), acts, clip, rnd)
        out_b, h_b, c_b = _lstm_direction(x[::-1], back, (h0[:, hidden:], c0[:, hidden:]), acts, clip, rnd)
        outs = np.concatenate([out_f, out_b[::-1]], axis=-1)
        h, c = np.concatenate([h_f, h_b], axis=-1), np.concatenate([c_f, c_b], axis=-1)
    seq_out = outs if a.bool("output_sequence", False) else h[None]
    return seq_out, h, c


def _one_direction(a: Args, ctx: Context, gates: int, name: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """What a one-direction gru / rnn starts from: the sequence in processing order, the weights,
    the hidden size and the initial state."""
    x, w_ih, w_hh = f32(a["x"]), f32(a["weight_ih"]), f32(a["weight_hh"])
    hidden = _check(x, w_ih, w_hh, gates, name)
    direction = a.str("direction", "forward")
    if direction not in ("forward", "reverse"):
        raise RuntimeLoadError(f"{name}: direction {direction!r} is not supported")
    h = _state(a["initial_h"], x.shape[1], hidden, ctx)
    return (x if direction == "forward" else x[::-1]), w_ih, w_hh, hidden, h


# ---- GRU ----------------------------------------------------------------------------------------
@op("gru")
def _gru(a: Args, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    seq, w_ih, w_hh, hidden, h = _one_direction(a, ctx, 3, "gru")
    rec, act = _activation(a, "recurrent_activation", "sigmoid"), _activation(a, "activation", "tanh")
    rnd = _rounder(a)
    reset_after = a.bool("reset_after", False)
    bias = _vector(a, "bias", 3 * hidden)          # iOS15: the one bias; iOS18 reset_after: hidden bias
    pre = _rows(seq, w_ih) + _vector(a, "input_bias", 3 * hidden)
    r_sl, o_sl, z_sl = slice(0, hidden), slice(hidden, 2 * hidden), slice(2 * hidden, 3 * hidden)
    outs = np.empty(seq.shape[:2] + (hidden,), np.float32)
    for t in range(seq.shape[0]):
        if reset_after:
            gh = _rows(h, w_hh) + bias
            r = rec(pre[t][:, r_sl] + gh[:, r_sl])
            z = rec(pre[t][:, z_sl] + gh[:, z_sl])
            o = act(pre[t][:, o_sl] + r * gh[:, o_sl])
        else:
            # the reset gate scales the state before its product: o = act(W_o x + R_o (r*h) + b_o)
            gi = pre[t] + bias
            gh = _rows(h, w_hh[np.r_[r_sl, z_sl]])
            r = rec(gi[:, r_sl] + gh[:, :hidden])
            z = rec(gi[:, z_sl] + gh[:, hidden:])
            o = act(gi[:, o_sl] + _rows(r * h, w_hh[o_sl]))
        h = rnd((np.float32(1) - z) * o + z * h)
        outs[t] = h
    return (outs if a.bool("output_sequence", False) else h[None]), h


# ---- simple RNN ---------------------------------------------------------------------------------
@op("rnn")
def _rnn(a: Args, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    seq, w_ih, w_hh, hidden, h = _one_direction(a, ctx, 1, "rnn")
    act, rnd = _activation(a, "activation", "tanh"), _rounder(a)
    pre = _rows(seq, w_ih) + _vector(a, "bias", hidden)
    outs = np.empty(seq.shape[:2] + (hidden,), np.float32)
    for t in range(seq.shape[0]):
        h = rnd(act(pre[t] + _rows(h, w_hh)))
        outs[t] = h
    return (outs if a.bool("output_sequence", False) else h[None]), h
