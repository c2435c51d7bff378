"""Convolution and pooling MIL ops: conv (im2col + one matrix product per sample, or per-tap
accumulation for depthwise), conv_transpose (one product + per-tap scatter-add), max / avg pool.
Float32 inside an op; rounding to the declared type is the interpreter's job."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import RuntimeLoadError
from .registry import Args, Context, f32, op


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




@op("conv_transpose")
def _conv_transpose(a: Args, ctx: Context) -> np.ndarray:
    """Transposed convolution, weight [C_in, C_out/groups, *K] (torch's layout). One product per
    sample gives every input position's contribution to every kernel tap; each tap is then
    added into the strided output positions it lands on. The full ("valid") result is cut to
    the requested size: ``pad`` from the start, ``output_shape`` (when given) as the size, zeros
    past the full extent (torch's output_padding)."""
    x, w = f32(a["x"]), f32(a["weight"])
    n_sp = x.ndim - 2
    if n_sp not in (1, 2, 3) or w.ndim != x.ndim:
        raise RuntimeLoadError(f"conv_transpose of a rank-{x.ndim} input with a rank-{w.ndim} weight")
    strides = a.ints("strides", [1] * n_sp)
    dilations = a.ints("dilations", [1] * n_sp)
    groups = a.int("groups", 1)
    batch, cin = x.shape[:2]
    if w.shape[0] != cin or cin % groups:
        raise RuntimeLoadError(f"conv_transpose: weight {w.shape} for {cin} input channels, {groups} groups")
    og, kernel, din = w.shape[1], w.shape[2:], x.shape[2:]
    cout, cg = og * groups, cin // groups
    full = [(d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(din, strides, kernel, dilations)]
    out = np.zeros([batch] + full + [cout], np.float32)  # channels-last while accumulating
    xl = np.moveaxis(x, 1, -1).reshape(batch, -1, cin)  # [N, P, C_in]
    taps = list(np.ndindex(*kernel))
    for g in range(groups):
        wg = np.moveaxis(w[g * cg:(g + 1) * cg], 1, -1).reshape(cg, -1)  # [cg, *K * og]
        cols = np.matmul(xl[..., g * cg:(g + 1) * cg], wg).reshape([batch] + list(din) + [len(taps), og])
        for t, tap in enumerate(taps):
            where = tuple(slice(k * dl, k * dl + (d - 1) * s + 1, s)
                          for k, dl, d, s in zip(tap, dilations, din, strides))
            out[(slice(None),) + where + (slice(g * og, (g + 1) * og),)] += cols[(Ellipsis, t, slice(None))]
    pad_type = a.str("pad_type", "valid")
    if pad_type == "custom":
        p = a.ints("pad", [0] * 2 * n_sp)
        before, sizes = [p[2 * i] for i in range(n_sp)], [f - p[2 * i] - p[2 * i + 1] for i, f in enumerate(full)]
    elif pad_type == "valid":
        before, sizes = [0] * n_sp, list(full)
    elif pad_type == "same":
        sizes = [d * s for d, s in zip(din, strides)]
        before = [max(f - n, 0) // 2 for f, n in zip(full, sizes)]
    else:
        raise RuntimeLoadError(f"conv_transpose: pad_type {pad_type!r} is not supported by the emulator")
    shape = a.ints("output_shape")
    if shape is not None:
        sizes = list(shape[2:])
    if len(sizes) != n_sp or any(s <= 0 or b < 0 for s, b in zip(sizes, before)):
        raise RuntimeLoadError(f"conv_transpose: output size {sizes} with padding {before}")
    if any(b + s > f for b, s, f in zip(before, sizes, full)):  # output padding past the full extent
        grown = np.zeros([batch] + [max(f, b + s) for b, s, f in zip(before, sizes, full)] + [cout], np.float32)
        grown[(slice(None),) + tuple(slice(0, f) for f in full)] = out
        out = grown
    out = out[(slice(None),) + tuple(slice(b, b + s) for b, s in zip(before, sizes))]
    bias = a.get("bias")
    if bias is not None:
        out = out + f32(bias).reshape(cout)
    return np.moveaxis(out, -1, 1)
