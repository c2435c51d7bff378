"""Neural-network MIL ops, vectorized over the batch: linear, matmul, softmax, normalizations and
scaled dot-product attention (convolution and pooling: ops_conv). Float32 inside an op; rounding
to the declared type is the interpreter's job."""
from __future__ import annotations

import math

import numpy as np

from .registry import Args, Context, axis_of, f32, op


def _per_sample_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y`` with a 2-D ``x`` computed row by row (stacked [N, 1, K] products), so a row's
    result is the same whether it is computed alone or in a batch (see conv)."""
    if x.ndim == 2 and y.ndim == 2:
        return np.matmul(x[:, None, :], y)[:, 0, :]
    return np.matmul(x, y)


@op("linear")
def _linear(a: Args, ctx: Context) -> np.ndarray:
    out = _per_sample_matmul(f32(a["x"]), f32(a["weight"]).T)
    bias = a.get("bias")
    return out if bias is None else out + f32(bias)


@op("matmul")
def _matmul(a: Args, ctx: Context) -> np.ndarray:
    x, y = f32(a["x"]), f32(a["y"])
    if a.bool("transpose_x", False) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if a.bool("transpose_y", False) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return _per_sample_matmul(x, y)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@op("softmax")
def _softmax_op(a: Args, ctx: Context) -> np.ndarray:
    return _softmax(f32(a["x"]), a.int("axis", -1))


@op("layer_norm")
def _layer_norm(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    axes = a.ints("axes")
    axes = tuple(range(x.ndim)) if axes is None else tuple(axis_of(i, x.ndim) for i in axes)
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + np.float32(a.float("epsilon", 1e-5)))
    norm_shape = tuple(x.shape[i] for i in sorted(axes))
    gamma, beta = a.get("gamma"), a.get("beta")
    # gamma/beta have the shape of the normalized axes, which are trailing in every converter output
    if gamma is not None:
        out = out * f32(gamma).reshape(norm_shape)
    if beta is not None:
        out = out + f32(beta).reshape(norm_shape)
    return out


def _scale_shift(out: np.ndarray, a: Args, shape: tuple[int, ...]) -> np.ndarray:
    """The optional per-channel ``gamma`` / ``beta`` of the normalization ops."""
    if a.get("gamma") is not None:
        out = out * f32(a["gamma"]).reshape(shape)
    if a.get("beta") is not None:
        out = out + f32(a["beta"]).reshape(shape)
    return out


@op("batch_norm")
def _batch_norm(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - f32(a["mean"]).reshape(shape)) / np.sqrt(f32(a["variance"]).reshape(shape)
                                                         + np.float32(a.float("epsilon", 1e-5)))
    return _scale_shift(out, a, shape)


@op("instance_norm")
def _instance_norm(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + np.float32(a.float("epsilon", 1e-5)))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _scale_shift(out, a, shape)


@op("l2_norm")
def _l2_norm(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    # MIL normalizes over the last three axes (leading ones are batch): x / sqrt(sum(x^2) + eps)
    sq = np.sum(x * x, axis=(-3, -2, -1), keepdims=True)
    return x / np.sqrt(sq + np.float32(a.float("epsilon", 1e-6)))


@op("scaled_dot_product_attention")
def _sdpa(a: Args, ctx: Context) -> np.ndarray:
    q, k, v = f32(a["query"]), f32(a["key"]), f32(a["value"])
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.float32(math.sqrt(q.shape[-1]))
    mask = a.get("attn_mask")
    if mask is not None:
        mask = np.asarray(mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + f32(mask)
    return np.matmul(_softmax(scores, -1), v)
