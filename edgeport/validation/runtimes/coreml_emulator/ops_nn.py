"""Neural-network MIL ops, vectorized over the batch: conv (im2col + one matrix product, or
per-tap accumulation for depthwise), pooling, linear, matmul, softmax, normalizations and
scaled dot-product attention. Float32 inside an op; rounding to the declared type is the
interpreter's job."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import RuntimeLoadError
from .registry import Args, Context, axis_of, f32, op


def _spatial_pads(pad_type: str, pad: list[int] | None, sizes: tuple[int, ...], kernel: list[int],
                  strides: list[int], dilations: list[int], ceil_mode: bool = False) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis for MIL's pad_type valid / same / same_lower / custom."""
    n = len(sizes)
    if pad_type == "valid":
        out = [(0, 0)] * n
    elif pad_type == "custom":
        p = pad or [0] * (2 * n)
        out = [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    elif pad_type in ("same", "same_lower"):
        out = []
        for size, k, s, d in zip(sizes, kernel, strides, dilations):
            eff = (k - 1) * d + 1
            total = max((math.ceil(size / s) - 1) * s + eff - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
    else:
        raise RuntimeLoadError(f"pad_type {pad_type!r} is not supported by the emulator")
    if ceil_mode:  # extend the end so a last partial window exists (pooling)
        fixed = []
        for (b, e), size, k, s in zip(out, sizes, kernel, strides):
            span = size + b + e - k
            extra = (math.ceil(span / s) * s - span) if span % s else 0
            fixed.append((b, e + extra))
        out = fixed
    return out


def _zero_pad(x: np.ndarray, width: list[tuple[int, int]]) -> np.ndarray:
    """Zero padding into a fresh C-contiguous buffer (np.pad is several times slower)."""
    if all(w == (0, 0) for w in width):
        return x
    out = np.zeros([d + b + e for d, (b, e) in zip(x.shape, width)], dtype=x.dtype)
    out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, width))] = x
    return out


def _windows(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int]) -> np.ndarray:
    """[N, C, *spatial] -> [N, C, *out_spatial, *kernel] strided view (no copy)."""
    n = len(kernel)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    return win[index]


@op("conv")
def _conv(a: Args, ctx: Context) -> np.ndarray:
    x, w = f32(a["x"]), f32(a["weight"])
    n_sp = w.ndim - 2
    if n_sp not in (1, 2):
        raise RuntimeLoadError(f"conv with {n_sp} spatial dims is not supported by the emulator")
    strides = a.ints("strides", [1] * n_sp)
    dilations = a.ints("dilations", [1] * n_sp)
    groups = a.int("groups", 1)
    kernel = list(w.shape[2:])
    pads = _spatial_pads(a.str("pad_type", "valid"), a.ints("pad"), x.shape[2:], kernel, strides, dilations)
    batch, cin = x.shape[:2]
    cout = w.shape[0]
    depthwise = groups == cin and w.shape[1] == 1 and cout == cin
    pointwise = groups == 1 and all(k == 1 for k in kernel) and all(s == 1 for s in strides)
    if depthwise or pointwise:
        x = _zero_pad(x, [(0, 0), (0, 0)] + pads)
    if pointwise:
        out = np.matmul(w.reshape(cout, cin), x.reshape(batch, cin, -1)).reshape((batch, cout) + x.shape[2:])
    elif depthwise:
        # depthwise: one multiply-add per kernel tap over strided views, per sample and block of
        # 32 channels so the working set stays in cache (same tap order: same sums as unblocked)
        out_sp = [(x.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(n_sp)]
        out = np.zeros([batch, cout] + out_sp, dtype=np.float32)
        tmp = np.empty([min(32, cout)] + out_sp, dtype=np.float32)
        taps = [(tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                            for t, d, s, o in zip(tap, dilations, strides, out_sp))) for tap in np.ndindex(*kernel)]
        for n in range(batch):
            for c0 in range(0, cout, 32):
                c1 = min(cout, c0 + 32)
                acc, buf = out[n, c0:c1], tmp[:c1 - c0]
                for tap, window in taps:
                    np.multiply(x[(n, slice(c0, c1)) + window],
                                w[(slice(c0, c1), 0) + tap].reshape((c1 - c0,) + (1,) * n_sp), out=buf)
                    acc += buf
    else:
        # im2col in channels-last order: each copied run is C contiguous floats, and the weights
        # are reordered to (O, *K, C) to match
        xl = _zero_pad(np.ascontiguousarray(np.moveaxis(x, 1, -1)), [(0, 0)] + pads + [(0, 0)])
        eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        win = sliding_window_view(xl, eff, axis=tuple(range(1, 1 + n_sp)))  # N, *O', C, *K'
        index = (slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),) + \
            tuple(slice(None, None, d) for d in dilations)
        win = win[index]
        out_sp = win.shape[1:1 + n_sp]
        perm = (0,) + tuple(range(1, 1 + n_sp)) + tuple(range(2 + n_sp, 2 + 2 * n_sp)) + (1 + n_sp,)
        win = win.transpose(perm)  # N, *O, *K, C
        cg, og = cin // groups, cout // groups
        wl = np.moveaxis(w, 1, -1)  # O, *K, C/groups
        parts = []
        for g in range(groups):
            # one product per sample ([N, O, K] stacked), never one tall [N*O, K] product: the
            # BLAS result of a row must not depend on how many samples share the call, so a
            # batched run equals per-sample runs bit for bit
            cols = (win if groups == 1 else win[..., g * cg:(g + 1) * cg]).reshape(batch, -1, cg * int(np.prod(kernel)))
            parts.append(np.matmul(cols, wl[g * og:(g + 1) * og].reshape(og, -1).T))  # [N, O, og]
        res = parts[0] if groups == 1 else np.concatenate(parts, axis=-1)
        out = np.moveaxis(res.reshape((batch,) + out_sp + (cout,)), -1, 1)
    bias = a.get("bias")
    if bias is not None:
        out = out + f32(bias).reshape((1, cout) + (1,) * n_sp)
    # left in whatever memory order the product produced (often channels-last under an NCHW view):
    # the next conv wants channels-last anyway, element-wise ops do not care
    return out


def _pool(a: Args, reduce: str) -> np.ndarray:
    x = f32(a["x"])
    kernel = a.ints("kernel_sizes")
    n_sp = len(kernel)
    strides = a.ints("strides", [1] * n_sp)
    ceil_mode = a.bool("ceil_mode", False)
    pads = _spatial_pads(a.str("pad_type", "valid"), a.ints("pad"), x.shape[2:], kernel, strides,
                         [1] * n_sp, ceil_mode)
    width = [(0, 0), (0, 0)] + pads
    # one element-wise max / sum per kernel tap over strided views: far faster than reducing a
    # window view's trailing axes
    padded = any(p != (0, 0) for p in pads)
    if reduce == "max":
        win = _windows(np.pad(x, width, constant_values=-np.inf) if padded else x, kernel, strides, [1] * n_sp)
        out = None
        for tap in np.ndindex(*kernel):
            v = win[(Ellipsis,) + tap]
            out = v.copy() if out is None else np.maximum(out, v, out=out)
        return out
    win = _windows(_zero_pad(x, width), kernel, strides, [1] * n_sp)
    sums = np.zeros(win.shape[:2 + n_sp], np.float32)
    for tap in np.ndindex(*kernel):
        sums += win[(Ellipsis,) + tap]
    if a.bool("exclude_padding_from_average", False):
        ones = _windows(np.pad(np.ones((1, 1) + x.shape[2:], np.float32), width), kernel, strides, [1] * n_sp)
        return sums / ones.sum(axis=tuple(range(-n_sp, 0)))
    return sums / np.float32(np.prod(kernel))


@op("max_pool")
def _max_pool(a: Args, ctx: Context) -> np.ndarray:
    return _pool(a, "max")


@op("avg_pool")
def _avg_pool(a: Args, ctx: Context) -> np.ndarray:
    return _pool(a, "avg")


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
