"""Rounding float32 values to fp16 (ties to even), kept as float32: what a FLOAT16 program does
to every op's result.

Same result as ``x.astype(float16).astype(float32)`` (tested: subnormals, overflow to inf, NaN,
signed zeros, and every float32 in fp16's normal range) but several times faster, and the
emulator rounds after every op: numpy's float16 cast is not vectorized here.

Normal range: Veltkamp splitting. With ``c = x * (2**13 + 1)``, ``c - (c - x)`` is ``x`` rounded
to 24 - 13 = 11 significant bits, to nearest with ties to even: fp16's precision, in three
float32 passes. fp16 subnormals (0 < |x| < 2**-14, on a fixed 2**-24 grid) and overflow
(|x| >= 65520) are found from the bits first and fixed per block; they are few.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_BLOCK = 1 << 16                      # elements per block: the passes stay in the L2 cache
_SPLIT = np.float32(8193)             # 2**13 + 1
_ABS = np.uint32(0x7FFFFFFF)
_OVERFLOW_BITS = np.uint32(0x477FF000)  # bits of 65520: from here fp16 rounds to inf (or NaN)
_TINY_BITS = np.uint32(0x38800000 - 1)  # bits of 2**-14 (fp16's smallest normal), minus one
_ONE = np.uint32(1)
_GRID = np.float32(0.75)              # float32's ulp at 0.75 is 2**-24: fp16's subnormal grid


def round_fp16(x: Any, inplace: bool = False, bounds: tuple[float, float] | None = None) -> np.ndarray:
    """``x`` rounded to fp16 values (float32 array, same shape and memory order). ``inplace``:
    ``x`` is a float32 array nobody else holds, and its buffer may be reused for the result.
    ``bounds``: every value of ``x`` is known to lie in [lo, hi] (or be NaN), e.g. just clipped:
    with lo >= 0 the sign need not be masked off, inside fp16's range overflow cannot occur."""
    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    signed = not lo >= 0
    may_overflow = not (-65520 < lo and hi < 65520)
    x = np.asarray(x, dtype=np.float32)
    if not x.flags.c_contiguous and x.ndim > 1:
        # keep the memory order (conv results are channels-last under an NCHW view): round the
        # underlying buffer, hand back the same view of it
        order = tuple(int(i) for i in np.argsort([-abs(st) for st in x.strides], kind="stable"))
        base = x.transpose(order)
        if base.flags.c_contiguous:
            return round_fp16(base, inplace, bounds).transpose(np.argsort(order))
        inplace = False
    if not x.flags.c_contiguous:
        x, inplace = np.ascontiguousarray(x), True
    flat = x.reshape(-1)
    out = flat if inplace and flat.flags.writeable else np.empty_like(flat)
    # one scratch buffer per call: first the |x| - 1 bits for the tiny test, then c = x * 8193
    scratch = np.empty(min(_BLOCK, flat.size), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, flat.size, _BLOCK):
            e = min(flat.size, s + _BLOCK)
            xs, cc, o = flat[s:e], scratch[:e - s], out[s:e]
            uu = cc.view(np.uint32)
            if signed:
                np.bitwise_and(xs.view(np.uint32), _ABS, out=uu)  # |x| as bits
                saved = xs.copy() if may_overflow and uu.max() >= _OVERFLOW_BITS else None
                uu -= _ONE  # 0 wraps to the top, so only non-zero values pass the "tiny" test
            else:  # x >= 0 (or NaN): its bits are |x|'s
                np.subtract(xs.view(np.uint32), _ONE, out=uu)
                saved = xs.copy() if may_overflow and uu.max() >= _OVERFLOW_BITS - _ONE else None
            tiny = np.flatnonzero(uu < _TINY_BITS)
            tiny_vals = xs[tiny]
            np.multiply(xs, _SPLIT, out=cc)
            np.subtract(cc, xs, out=o)  # d = c - x (o may be xs itself: x is not read again)
            np.subtract(cc, o, out=o)   # c - d
            if tiny.size:
                # adding 0.75 rounds to the 2**-24 grid (ties to even); taking it off is exact
                o[tiny] = np.copysign((np.abs(tiny_vals) + _GRID) - _GRID, tiny_vals)
            if saved is not None:
                big = np.abs(saved) >= 65520
                o[big] = np.copysign(np.float32(np.inf), saved[big])
                nan = np.isnan(saved)
                o[nan] = saved[nan]
    return out.reshape(x.shape)
