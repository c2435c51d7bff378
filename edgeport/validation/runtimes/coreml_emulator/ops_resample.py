"""Spatial resampling MIL ops: nearest / bilinear upsampling and resizing, crop, pixel
(un)shuffle.

Sample positions follow coremltools' op definitions (iOS15 image_resizing, iOS16
``half_pixel_centers``, iOS17 ``resize``): for an axis of ``n_in`` resized to ``n_out``,

- ALIGN_CORNERS / STRICT_ALIGN_CORNERS: ``i * (n_in-1)/(n_out-1)`` (ALIGN_CORNERS: the centre
  when ``n_out == 1``);
- UNALIGN_CORNERS (half-pixel centres): ``(i + 0.5) * n_in/n_out - 0.5``;
- DEFAULT: ``i * n_in/n_out``;
- OFFSET_CORNERS: ``0.5*d + i*d`` with ``d = max(1, n_in-1)/n_out``;

clamped to ``[0, n_in-1]``. Bilinear interpolation is separable: one axis, then the other.
"""
from __future__ import annotations

import math

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, f32, op


def _grid(n_in: int, n_out: int, mode: str) -> np.ndarray:
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        if n_out == 1:
            g = np.full(1, (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            g = i * ((n_in - 1) / (n_out - 1))
    elif mode == "UNALIGN_CORNERS":
        g = (i + 0.5) * (n_in / n_out) - 0.5
    elif mode == "DEFAULT":
        g = i * (n_in / n_out)
    elif mode == "OFFSET_CORNERS":
        d = max(1, n_in - 1) / n_out
        g = 0.5 * d + i * d
    else:
        raise RuntimeLoadError(f"sampling mode {mode!r} is not supported by the emulator")
    return np.clip(g, 0, n_in - 1)


def _linear_axis(x: np.ndarray, axis: int, n_out: int, mode: str) -> np.ndarray:
    n_in = x.shape[axis]
    g = _grid(n_in, n_out, mode)
    lo = np.floor(g).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (g - lo).astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1 - axis % x.ndim))
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + (b - a) * w


def _bilinear(x: np.ndarray, sizes: tuple[int, ...], mode: str) -> np.ndarray:
    """Resize the trailing ``len(sizes)`` axes of ``x`` to ``sizes``."""
    out = f32(x)
    for k, n_out in enumerate(sizes):
        axis = x.ndim - len(sizes) + k
        if n_out != out.shape[axis] or mode not in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS", "UNALIGN_CORNERS", "DEFAULT"):
            out = _linear_axis(out, axis, n_out, mode)
    return out


def _nearest(x: np.ndarray, index_per_axis: list[np.ndarray]) -> np.ndarray:
    out = np.asarray(x)
    for k, idx in enumerate(index_per_axis):
        out = np.take(out, idx, axis=out.ndim - len(index_per_axis) + k)
    return out


def _scaled(n_in: int, scale: float, what: str) -> int:
    if not (scale > 0 and math.isfinite(scale)):
        raise RuntimeLoadError(f"{what}: scale factor {scale} is not a positive number")
    return int(math.floor(n_in * scale))


def _check_rank(x: np.ndarray, what: str) -> None:
    if x.ndim < 3:
        raise RuntimeLoadError(f"{what}: input of rank {x.ndim}, at least 3 expected")


@op("upsample_nearest_neighbor")
def _upsample_nearest(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    _check_rank(x, a.op_type)
    scales = (a.float("scale_factor_height", 1.0), a.float("scale_factor_width", 1.0))
    idx = []
    for n_in, s in zip(x.shape[-2:], scales):
        n_out = _scaled(n_in, s, a.op_type)
        # source = floor(dst / scale); the epsilon keeps exact multiples (e.g. a scale stored as
        # 1.79999995 for 9/5) on the integer they stand for
        idx.append(np.minimum(np.floor(np.arange(n_out) / s + 1e-6).astype(np.int64), n_in - 1))
    return _nearest(x, idx)


@op("resize_nearest_neighbor")
def _resize_nearest(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    _check_rank(x, a.op_type)
    sizes = (a.int("target_size_height"), a.int("target_size_width"))
    return _nearest(x, [_nearest_index(n_in, n_out) for n_in, n_out in zip(x.shape[-2:], sizes)])


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """floor(dst * n_in / n_out), in integers (TF's resize_nearest_neighbor without half pixels)."""
    if n_out <= 0:
        raise RuntimeLoadError(f"resize to size {n_out}")
    return np.minimum((np.arange(n_out) * n_in) // n_out, n_in - 1)


@op("upsample_bilinear")
def _upsample_bilinear(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    _check_rank(x, a.op_type)
    align = a.bool("align_corners", True)
    half = a.get("half_pixel_centers")  # iOS16; defaults to the opposite of align_corners
    half = (not align) if half is None else a.bool("half_pixel_centers")
    if align and half:
        raise RuntimeLoadError("upsample_bilinear: align_corners and half_pixel_centers together are undefined")
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half else "DEFAULT")
    sizes = tuple(_scaled(n, s, a.op_type) for n, s in
                  zip(x.shape[-2:], (a.float("scale_factor_height", 1.0), a.float("scale_factor_width", 1.0))))
    return _bilinear(x, sizes, mode)


@op("resize_bilinear")
def _resize_bilinear(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    _check_rank(x, a.op_type)
    sizes = (a.int("target_size_height", 1), a.int("target_size_width", 1))
    if min(sizes) <= 0:
        raise RuntimeLoadError(f"resize_bilinear to size {sizes}")
    return _bilinear(x, sizes, a.str("sampling_mode", "DEFAULT"))


@op("resize")
def _resize(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    shape = a.ints("shape")
    k = a.int("resized_dims")
    if not 0 < k <= len(shape) <= x.ndim:
        raise RuntimeLoadError(f"resize: resized_dims {k} with shape {shape} on rank {x.ndim}")
    sizes = tuple(s if s > 0 else x.shape[x.ndim - k + i] for i, s in enumerate(shape[-k:]))
    mode = a.str("sampling_mode", "DEFAULT")
    if a.str("interpolation_mode", "LINEAR") == "NEAREST_NEIGHBOR":
        if mode != "DEFAULT":
            raise RuntimeLoadError(f"resize: nearest neighbour with sampling mode {mode} is not supported by the emulator")
        return _nearest(x, [_nearest_index(n_in, n) for n_in, n in zip(x.shape[-k:], sizes)])
    return _bilinear(x, sizes, mode)


@op("crop")
def _crop(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    _check_rank(x, a.op_type)
    (top, bottom), (left, right) = a.ints("crop_height"), a.ints("crop_width")
    h, w = x.shape[-2:]
    if min(top, bottom, left, right) < 0 or top + bottom > h or left + right > w:
        raise RuntimeLoadError(f"crop of {[top, bottom, left, right]} from {h}x{w}")
    return x[..., top:h - bottom, left:w - right]


@op("pixel_shuffle")
def _pixel_shuffle(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    f = a.int("upscale_factor")
    n, c, h, w = x.shape
    if f <= 0 or c % (f * f):
        raise RuntimeLoadError(f"pixel_shuffle by {f} of {c} channels")
    return x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (f * f), h * f, w * f)


@op("pixel_unshuffle")
def _pixel_unshuffle(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    f = a.int("downscale_factor")
    n, c, h, w = x.shape
    if f <= 0 or h % f or w % f:
        raise RuntimeLoadError(f"pixel_unshuffle by {f} of {h}x{w}")
    return x.reshape(n, c, h // f, f, w // f, f).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * f * f, h // f, w // f)
