"""Weight decompression (constexpr_* ops, iOS16 and iOS18 forms) and activation (de)quantization.

constexpr ops run once, when the program is loaded, as CoreML decompresses at load/compile time;
their results then feed the compute ops like any constant.
"""
from __future__ import annotations

import numpy as np

from ....errors import RuntimeLoadError
from .blob import unpack_bits
from .registry import Args, Context, f32, op


def _broadcast_axis(v: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or per-axis vector (scale / zero point), shaped to broadcast along ``axis``."""
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[axis] = -1
    return v.reshape(shape)


@op("constexpr_affine_dequantize")
def _affine_dequantize(a: Args, ctx: Context) -> np.ndarray:
    q = np.asarray(a["quantized_data"])
    axis = a.int("axis", 0) % max(q.ndim, 1)
    scale = _broadcast_axis(f32(a["scale"]), q.ndim, axis)
    zp = _broadcast_axis(np.asarray(a["zero_point"]).astype(np.float32), q.ndim, axis)
    return scale * (q.astype(np.float32) - zp)


def _repeat_blocks(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Expand block-wise parameters (one value per block along each axis) to the data's shape."""
    for axis, (dim, n) in enumerate(zip(shape, v.shape)):
        if n != dim:
            if dim % n:
                raise RuntimeLoadError(f"block parameters of size {n} do not divide axis of size {dim}")
            v = np.repeat(v, dim // n, axis=axis)
    return v


@op("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale(a: Args, ctx: Context) -> np.ndarray:
    data = np.asarray(a["data"]).astype(np.float32)
    scale = _repeat_blocks(f32(a["scale"]), data.shape)
    offset = a.get("offset")
    if offset is not None:
        data = data - _repeat_blocks(np.asarray(offset).astype(np.float32), data.shape)
    return scale * data


def _lut_dense(indices: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    """iOS18 form: ``indices`` has the output shape (vector axis aside), ``lut`` is
    ``[*groups, palettes, vector]`` with one table per block of ``indices``."""
    k = indices.ndim
    groups = lut.shape[:k]
    vsize = lut.shape[-1]
    idx = indices.astype(np.int64)
    # the table each element uses: its block index along every axis
    block_ids = [np.arange(d) // (d // g) for d, g in zip(indices.shape, groups)]
    grid = np.ix_(*block_ids)
    values = lut[grid + (idx,)]  # [*indices.shape, vector]
    if vsize == 1:
        return values[..., 0]
    axis = vector_axis if vector_axis is not None else 0
    axis = axis % k
    values = np.moveaxis(values, -1, axis + 1)  # vector elements follow their index along axis
    shape = list(indices.shape)
    shape[axis] *= vsize
    return values.reshape(shape)


@op("constexpr_lut_to_dense")
def _lut_to_dense(a: Args, ctx: Context) -> np.ndarray:
    lut = np.asarray(a["lut"])
    if "shape" in a:  # iOS16: packed uint8 indices, one table for the whole tensor
        shape = tuple(a.ints("shape"))
        nbits = int(np.log2(lut.shape[0]))
        idx = unpack_bits(np.asarray(a["indices"]), nbits, int(np.prod(shape)))
        return lut[idx.astype(np.int64)].reshape(shape)
    va = a.get("vector_axis")
    return _lut_dense(np.asarray(a["indices"]), lut, None if va is None else int(np.asarray(va)))


def _sparse_dense(nonzero: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, dtype=nonzero.dtype if nonzero.dtype.kind == "f" else np.float32)
    keep = mask.astype(bool)
    if int(keep.sum()) != nonzero.size:
        raise RuntimeLoadError(f"sparse weight: mask has {int(keep.sum())} set bits for {nonzero.size} values")
    out[keep] = nonzero.reshape(-1)
    return out


@op("constexpr_sparse_to_dense")
def _sparse_to_dense(a: Args, ctx: Context) -> np.ndarray:
    nonzero = np.asarray(a["nonzero_data"])
    if "shape" in a:  # iOS16: flat bit mask packed in bytes + explicit shape
        shape = tuple(a.ints("shape"))
        mask = unpack_bits(np.asarray(a["mask"]), 1, int(np.prod(shape))).reshape(shape)
    else:
        mask = np.asarray(a["mask"])
    if nonzero.dtype.kind in "iu":
        out = np.zeros(mask.shape, dtype=nonzero.dtype)
        out[mask.astype(bool)] = nonzero.reshape(-1)
        return out
    return _sparse_dense(f32(nonzero), mask)


@op("constexpr_lut_to_sparse")
def _lut_to_sparse(a: Args, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(a["indices_mask"])
    indices = np.zeros(mask.shape, dtype=np.int64)
    indices[mask.astype(bool)] = np.asarray(a["indices_nonzero_data"]).reshape(-1)
    va = a.get("vector_axis")
    vaxis = None if va is None else int(np.asarray(va))
    lut = np.asarray(a["lut"])
    dense = _lut_dense(indices, lut, vaxis)
    if lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=(vaxis or 0) % mask.ndim)
    return mask, dense[mask.astype(bool)].reshape(-1)


@op("constexpr_sparse_blockwise_shift_scale")
def _sparse_shift_scale(a: Args, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(a["data_mask"])
    data = np.zeros(mask.shape, dtype=np.float32)
    keep = mask.astype(bool)
    data[keep] = np.asarray(a["nonzero_data"]).astype(np.float32).reshape(-1)
    offset = a.get("offset")
    if offset is not None:
        data = data - _repeat_blocks(np.asarray(offset).astype(np.float32), data.shape)
    data = _repeat_blocks(f32(a["scale"]), data.shape) * data
    return mask, data[keep].reshape(-1)


@op("constexpr_cast")
def _constexpr_cast(a: Args, ctx: Context) -> np.ndarray:
    return f32(a["source_val"])  # declared output type (fp32) is applied by the interpreter


# ---- activation quantization (iOS17 quantize / dequantize) ---------------------------------------
@op("quantize")
def _quantize(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["input"])
    axis = a.get("axis")
    ax = int(np.asarray(axis)) % x.ndim if axis is not None else 0
    scale = _broadcast_axis(f32(a["scale"]), x.ndim, ax)
    zp = a.get("zero_point")
    zp = np.float32(0) if zp is None else _broadcast_axis(np.asarray(zp).astype(np.float32), x.ndim, ax)
    dtype = a.str("output_dtype", "int8")
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    q = np.clip(np.round(x / scale) + zp, lo, hi)  # round half to even
    return q.astype(np.int8 if dtype == "int8" else np.uint8)


@op("dequantize")
def _dequantize(a: Args, ctx: Context) -> np.ndarray:
    q = np.asarray(a["input"]).astype(np.float32)
    axis = a.get("axis")
    ax = int(np.asarray(axis)) % q.ndim if axis is not None else 0
    scale = _broadcast_axis(f32(a["scale"]), q.ndim, ax)
    zp = a.get("zero_point")
    zp = np.float32(0) if zp is None else _broadcast_axis(np.asarray(zp).astype(np.float32), q.ndim, ax)
    return (q - zp) * scale
