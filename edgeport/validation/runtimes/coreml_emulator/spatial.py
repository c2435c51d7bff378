"""Spatial helpers shared by convolution and pooling: MIL's padding rules, zero padding,
strided window views."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ....errors import RuntimeLoadError


def spatial_pads(pad_type: str, pad: list[int] | None, sizes: tuple[int, ...], kernel: list[int],
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


def zero_pad(x: np.ndarray, width: list[tuple[int, int]]) -> np.ndarray:
    """Zero padding into a fresh C-contiguous buffer (np.pad is several times slower)."""
    if all(w == (0, 0) for w in width):
        return x
    out = np.zeros([d + b + e for d, (b, e) in zip(x.shape, width)], dtype=x.dtype)
    out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, width))] = x
    return out


def windows(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int]) -> np.ndarray:
    """[N, C, *spatial] -> [N, C, *out_spatial, *kernel] strided view (no copy)."""
    n = len(kernel)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    return win[index]
