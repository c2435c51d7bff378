"""Convolution MIL ops: conv (pointwise products, einsum or per-tap depthwise, im2col otherwise,
all channels-last) and conv_transpose (one product + per-tap scatter-add). Float32 inside an
op; rounding to the declared type is the interpreter's job, or the epilogue's (see plan.py)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import RuntimeLoadError
from .registry import Args, Context, f32, op
from .spatial import spatial_pads, zero_pad


def _channels_last(x: np.ndarray) -> np.ndarray:
    """[N, C, *S] as a C-contiguous [N, *S, C] array: free when ``x`` is already a channels-last
    buffer under an NCHW view (what every conv here returns), one transposing copy otherwise."""
    xl = np.moveaxis(x, 1, -1)
    return xl if xl.flags.c_contiguous else np.ascontiguousarray(xl)


_DW_BLOCK = 1 << 18  # output elements per depthwise block: its accumulator stays in the L2 cache
_DW_EINSUM_MIN_CHANNELS = 64  # from here einsum's one-call reduction beats a pass per tap


def _depthwise(xl: np.ndarray, w: np.ndarray, strides: list[int], dilations: list[int],
               finish: Callable[[np.ndarray], None]) -> np.ndarray:
    """Depthwise conv of a padded channels-last [N, *S, C] input with weight [C, 1, *K], per
    sample and block of output rows; ``finish`` (bias, epilogue) runs on each block while it is
    in cache. Many channels: one einsum over the block's strided window view sums the taps;
    few channels: one multiply and one add per tap (einsum's inner loop is then too short).
    Each sample is computed alone, in the same blocks, so batched and per-sample runs agree bit
    for bit."""
    n_sp = xl.ndim - 2
    kernel = w.shape[2:]
    wl = np.ascontiguousarray(np.moveaxis(w[:, 0], 0, -1))  # [*K, C]
    out_sp = [(xl.shape[1 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(n_sp)]
    batch, chans = xl.shape[0], xl.shape[-1]
    out = np.empty([batch] + out_sp + [chans], np.float32)
    rows = max(1, min(out_sp[0], _DW_BLOCK // max(1, math.prod(out_sp[1:]) * chans)))
    use_einsum = chans >= _DW_EINSUM_MIN_CHANNELS
    if use_einsum:
        eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        # [N, *O', C, *K'] -> strided to [N, *O, C, *K]
        win = sliding_window_view(xl, eff, axis=tuple(range(1, 1 + n_sp)))
        win = win[(slice(None),) + tuple(slice(None, None, st) for st in strides) + (slice(None),)
                  + tuple(slice(None, None, d) for d in dilations)]
        letters = "hwuv"[:n_sp], "klmn"[:n_sp]
        spec = f"{letters[0]}c{letters[1]},{letters[1]}c->{letters[0]}c"
    else:
        tmp = np.empty([rows] + out_sp[1:] + [chans], np.float32)
        taps = list(np.ndindex(*kernel))
    for n in range(batch):
        for r0 in range(0, out_sp[0], rows):
            r1 = min(out_sp[0], r0 + rows)
            acc = out[n, r0:r1]
            if use_einsum:
                np.einsum(spec, win[n, r0:r1], wl, out=acc)
                finish(acc)
                continue
            buf = tmp[:r1 - r0]
            for i, tap in enumerate(taps):
                first = tap[0] * dilations[0] + r0 * strides[0]
                window = (n, slice(first, first + (r1 - r0 - 1) * strides[0] + 1, strides[0])) + tuple(
                    slice(t * d, t * d + s * (o - 1) + 1, s)
                    for t, d, s, o in zip(tap[1:], dilations[1:], strides[1:], out_sp[1:]))
                if i == 0:
                    np.multiply(xl[window], wl[tap], out=acc)
                else:
                    np.multiply(xl[window], wl[tap], out=buf)
                    acc += buf
            finish(acc)
    return out


_PLANAR_MAX_CHANNELS = 16  # below this, a channels-last im2col copies runs too short to be fast


def _planar_im2col(x: np.ndarray, w: np.ndarray, pads: list[tuple[int, int]], strides: list[int],
                   dilations: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Convolution with few input channels (an RGB stem): im2col built channel-major, one
    strided copy of a whole plane per (channel, tap) into [C_in * K, P], then per sample
    ``cols.T @ W.T`` gives the channels-last [P, C_out] result directly."""
    batch, cin = x.shape[:2]
    cout, kernel = w.shape[0], w.shape[2:]
    xp = zero_pad(np.ascontiguousarray(x), [(0, 0), (0, 0)] + pads)
    out_sp = tuple((xp.shape[2 + i] - ((k - 1) * d + 1)) // s + 1
                   for i, (k, d, s) in enumerate(zip(kernel, dilations, strides)))
    taps = list(np.ndindex(*kernel))
    wt = w.reshape(cout, -1).T  # [(C_in, *K), C_out], the same order as the rows of cols
    res = np.empty((batch, math.prod(out_sp), cout), np.float32)
    cols = np.empty((cin, len(taps)) + out_sp, np.float32)
    for n in range(batch):
        for t, tap in enumerate(taps):
            window = tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                           for k, d, s, o in zip(tap, dilations, strides, out_sp))
            cols[:, t] = xp[(n, slice(None)) + window]
        np.matmul(cols.reshape(cin * len(taps), -1).T, wt, out=res[n])
    return res, out_sp


_PW_BLOCK = 1 << 17  # output elements per pointwise block (rows x C_out)


def _pointwise_padded(xl: np.ndarray, w: np.ndarray, finish: Callable[[np.ndarray], None],
                      pad: tuple[int, int, int, int]) -> np.ndarray:
    """Pointwise conv of [N, H, W, C_in] straight into a zero-bordered [N, H+t+b, W+l+r, C_out]
    buffer (a pad that followed the conv): blocks of whole rows, each finished and copied into
    place while in cache."""
    batch, height, width, cin = xl.shape
    top, bottom, left, right = pad
    wt = w.reshape(w.shape[0], cin).T
    cout = wt.shape[1]
    out = np.zeros((batch, height + top + bottom, width + left + right, cout), np.float32)
    rows = max(1, _PW_BLOCK // max(1, width * cout))
    tmp = np.empty((min(rows, height) * width, cout), np.float32)
    flat = xl.reshape(batch, height * width, cin)
    for n in range(batch):
        for h0 in range(0, height, rows):
            h1 = min(height, h0 + rows)
            block = tmp[:(h1 - h0) * width]
            np.matmul(flat[n, h0 * width:h1 * width], wt, out=block)
            finish(block)
            out[n, top + h0:top + h1, left:left + width] = block.reshape(h1 - h0, width, cout)
    return out


def _pointwise(xl: np.ndarray, w: np.ndarray, finish: Callable[[np.ndarray], None]) -> np.ndarray:
    """[N, P, C_in] @ [C_in, C_out] per sample, in blocks of rows so ``finish`` (bias, epilogue)
    runs on each block while it is in cache. Block boundaries depend on the sample only, never
    on the batch: batched and per-sample runs agree bit for bit."""
    batch, rows, cin = xl.shape
    wt = w.reshape(w.shape[0], cin).T
    out = np.empty((batch, rows, wt.shape[1]), np.float32)
    step = max(1, _PW_BLOCK // max(1, wt.shape[1]))
    for n in range(batch):
        for r0 in range(0, rows, step):
            block = out[n, r0:r0 + step]
            np.matmul(xl[n, r0:r0 + step], wt, out=block)
            finish(block)
    return out


@op("conv")
def _conv(a: Args, ctx: Context) -> np.ndarray:
    """Convolution computed channels-last and returned as an NCHW view of a channels-last
    buffer: the next conv takes it as is, element-wise ops keep the layout, and every product
    is one BLAS call per sample with channels as the contiguous inner dimension."""
    x, w = f32(a["x"]), f32(a["weight"])
    n_sp = w.ndim - 2
    if n_sp not in (1, 2) or x.ndim != w.ndim:
        raise RuntimeLoadError(f"conv with {n_sp} spatial dims is not supported by the emulator")
    strides = a.ints("strides", [1] * n_sp)
    dilations = a.ints("dilations", [1] * n_sp)
    groups = a.int("groups", 1)
    kernel = list(w.shape[2:])
    pads = spatial_pads(a.str("pad_type", "valid"), a.ints("pad"), x.shape[2:], kernel, strides, dilations)
    batch, cin = x.shape[:2]
    cout = w.shape[0]
    if groups <= 0 or cin % groups or cout % groups or w.shape[1] * groups != cin:
        raise RuntimeLoadError(f"conv: weight {w.shape} for {cin} input channels in {groups} groups")
    planar = groups == 1 and cin < _PLANAR_MAX_CHANNELS and any(k > 1 for k in kernel)
    xl = None if planar else zero_pad(_channels_last(x), [(0, 0)] + pads + [(0, 0)])
    bias = a.get("bias")
    bias = None if bias is None else f32(bias).reshape(cout)
    epilogue = a.epilogue

    def finish(block: np.ndarray) -> None:  # on a C-contiguous [..., C_out] block, in place
        if bias is not None:
            block += bias
        if epilogue is not None:
            epilogue(block)

    if groups == 1 and all(k == 1 for k in kernel):
        # pointwise: strided subsampling (if any), then [N, P, C_in] @ [C_in, C_out] per sample
        sub = xl[(slice(None),) + tuple(slice(None, None, s) for s in strides)] if any(s > 1 for s in strides) else xl
        out_sp = sub.shape[1:-1]
        if a.out_pad is not None and n_sp == 2:
            return np.moveaxis(_pointwise_padded(np.ascontiguousarray(sub), w, finish, a.out_pad), -1, 1)
        res = _pointwise(np.ascontiguousarray(sub).reshape(batch, -1, cin), w, finish)
    elif groups == cin and cout == cin:
        res = _depthwise(xl, w, strides, dilations, finish)
        out_sp = res.shape[1:-1]
    elif planar:
        res, out_sp = _planar_im2col(x, w, pads, strides, dilations)
        finish(res)
    else:
        # im2col in channels-last order: each copied run is C contiguous floats, and the weights
        # are reordered to (O, *K, C) to match
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
        res = np.ascontiguousarray(parts[0] if groups == 1 else np.concatenate(parts, axis=-1))
        finish(res)
    res = res.reshape((batch,) + tuple(out_sp) + (cout,))
    if a.out_pad is not None:  # a folded pad, on a path without the in-cache copy
        top, bottom, left, right = a.out_pad
        res = zero_pad(res, [(0, 0), (top, bottom), (left, right), (0, 0)])
    return np.moveaxis(res, -1, 1)


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
