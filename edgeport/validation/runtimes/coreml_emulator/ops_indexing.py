"""Index-driven MIL ops: scatter, scatter_along_axis, scatter_nd, topk, argsort, one_hot.

Out-of-range indices are undefined on the device (iOS17: "undefined but memory safe"); here they
are an error, so a program depending on them cannot pass validation unnoticed. Negative indices
count from the end (iOS15 semantics; iOS17 programs convert them before the op).
"""
from __future__ import annotations

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, axis_of, op

_MODES = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "max": np.maximum, "min": np.minimum}


def _wrap(idx: np.ndarray, size: int | np.ndarray, what: str) -> np.ndarray:
    idx = np.asarray(idx).astype(np.int64)
    if np.any(idx >= size) or np.any(idx < -np.asarray(size)):
        raise RuntimeLoadError(f"{what}: index out of range for size {size}")
    return np.where(idx < 0, idx + size, idx)


def _apply(out: np.ndarray, index: tuple, updates: np.ndarray, mode: str, what: str) -> np.ndarray:
    if mode == "update":
        out[index] = updates  # with repeated indices the last update wins
    elif mode in _MODES:
        with np.errstate(divide="ignore", invalid="ignore"):
            _MODES[mode].at(out, index, updates)
    else:
        raise RuntimeLoadError(f"{what}: mode {mode!r} is not supported by the emulator")
    return out


def _result_type(data: np.ndarray, updates: np.ndarray) -> np.ndarray:
    kind = np.result_type(data.dtype, updates.dtype)
    return data.astype(kind if data.dtype.kind == "f" or updates.dtype.kind != "f" else np.float32, copy=True)


@op("scatter")
def _scatter(a: Args, ctx: Context) -> np.ndarray:
    data, updates = np.asarray(a["data"]), np.asarray(a["updates"])
    axis = axis_of(a.int("axis", 0), data.ndim)
    idx = _wrap(np.asarray(a["indices"]).reshape(-1), data.shape[axis], "scatter")
    out = np.moveaxis(_result_type(data, updates), axis, 0)  # a view: writes land in the copy
    _apply(out, (idx,), np.moveaxis(updates, axis, 0), a.str("mode", "update"), "scatter")
    return np.moveaxis(out, 0, axis)


@op("scatter_along_axis")
def _scatter_along_axis(a: Args, ctx: Context) -> np.ndarray:
    data, updates = np.asarray(a["data"]), np.asarray(a["updates"])
    axis = axis_of(a.int("axis", 0), data.ndim)
    idx = np.asarray(a["indices"])
    if idx.shape != updates.shape or idx.ndim != data.ndim:
        raise RuntimeLoadError(f"scatter_along_axis: indices {idx.shape}, updates {updates.shape}, data {data.shape}")
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = _wrap(idx, data.shape[axis], "scatter_along_axis")
    return _apply(_result_type(data, updates), tuple(grid), updates, a.str("mode", "add"), "scatter_along_axis")


@op("scatter_nd")
def _scatter_nd(a: Args, ctx: Context) -> np.ndarray:
    data, updates = np.asarray(a["data"]), np.asarray(a["updates"])
    idx = np.asarray(a["indices"])
    k = idx.shape[-1]
    if k > data.ndim:
        raise RuntimeLoadError(f"scatter_nd: {k}-element indices into a rank-{data.ndim} tensor")
    idx = _wrap(idx, np.asarray(data.shape[:k]), "scatter_nd")
    return _apply(_result_type(data, updates), tuple(np.moveaxis(idx, -1, 0)), updates,
                  a.str("mode", "add"), "scatter_nd")


def _order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Indices sorting ``x`` along ``axis``; ties keep their original order."""
    key = x if ascending or x.dtype.kind == "b" else (-x if x.dtype.kind == "f" else -x.astype(np.int64))
    return np.argsort(key, axis=axis, kind="stable")


@op("topk")
def _topk(a: Args, ctx: Context) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a["x"])
    axis = axis_of(a.int("axis", -1), x.ndim)
    k = a.int("k", 1)
    k = x.shape[axis] if k == -1 else k
    if not 0 < k <= x.shape[axis]:
        raise RuntimeLoadError(f"topk: k={k} along an axis of {x.shape[axis]}")
    idx = np.take(_order(x, axis, a.bool("ascending", False)), np.arange(k), axis=axis)
    values = np.take_along_axis(x, idx, axis=axis)
    if not a.bool("return_indices", True):
        return values
    dtype = np.uint16 if a.str("output_indices_dtype", "int32") == "uint16" else np.int32
    return values, idx.astype(dtype)


@op("argsort")
def _argsort(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    return _order(x, axis_of(a.int("axis", -1), x.ndim), a.bool("ascending", False)).astype(np.int32)


@op("one_hot")
def _one_hot(a: Args, ctx: Context) -> np.ndarray:
    idx = np.asarray(a["indices"]).astype(np.int64)
    size = a.int("one_hot_vector_size")
    if size <= 0:
        raise RuntimeLoadError(f"one_hot of size {size}")
    on, off = a.get("on_value"), a.get("off_value")
    on = np.float32(1) if on is None else np.asarray(on).reshape(())
    off = np.float32(0) if off is None else np.asarray(off).reshape(())
    hot = idx[..., None] == np.arange(size)  # out-of-range indices give all-off vectors
    out = np.where(hot, on, off)
    return np.moveaxis(out, -1, axis_of(a.int("axis", -1), idx.ndim + 1))
