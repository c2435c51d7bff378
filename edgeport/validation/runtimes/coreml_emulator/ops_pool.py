"""Pooling MIL ops: max_pool and avg_pool (1-D and 2-D), one element-wise max / sum per kernel
tap over strided views."""
from __future__ import annotations

import numpy as np

from .registry import Args, Context, f32, op
from .spatial import spatial_pads, windows, zero_pad


def _pool(a: Args, reduce: str) -> np.ndarray:
    x = f32(a["x"])
    kernel = a.ints("kernel_sizes")
    n_sp = len(kernel)
    strides = a.ints("strides", [1] * n_sp)
    ceil_mode = a.bool("ceil_mode", False)
    pads = spatial_pads(a.str("pad_type", "valid"), a.ints("pad"), x.shape[2:], kernel, strides,
                         [1] * n_sp, ceil_mode)
    width = [(0, 0), (0, 0)] + pads
    # one element-wise max / sum per kernel tap over strided views: far faster than reducing a
    # window view's trailing axes
    padded = any(p != (0, 0) for p in pads)
    if reduce == "max":
        win = windows(np.pad(x, width, constant_values=-np.inf) if padded else x, kernel, strides, [1] * n_sp)
        out = None
        for tap in np.ndindex(*kernel):
            v = win[(Ellipsis,) + tap]
            out = v.copy() if out is None else np.maximum(out, v, out=out)
        return out
    win = windows(zero_pad(x, width), kernel, strides, [1] * n_sp)
    sums = np.zeros(win.shape[:2 + n_sp], np.float32)
    for tap in np.ndindex(*kernel):
        sums += win[(Ellipsis,) + tap]
    if a.bool("exclude_padding_from_average", False):
        ones = windows(np.pad(np.ones((1, 1) + x.shape[2:], np.float32), width), kernel, strides, [1] * n_sp)
        return sums / ones.sum(axis=tuple(range(-n_sp, 0)))
    return sums / np.float32(np.prod(kernel))


@op("max_pool")
def _max_pool(a: Args, ctx: Context) -> np.ndarray:
    return _pool(a, "max")


@op("avg_pool")
def _avg_pool(a: Args, ctx: Context) -> np.ndarray:
    return _pool(a, "avg")
