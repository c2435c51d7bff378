"""Shape and indexing MIL ops: reshape, transpose, squeeze/expand_dims, slicing, gather, concat,
split, stack, tile, pad, shape, fill, range.

Batched runs: a batch-1 program run on B samples at once sees shape constants with a leading 1
(``reshape`` to ``[1, ...]``, ``slice_by_index`` ending at 1 on axis 0). Those are read as the
batch axis when ``ctx.batch`` is set; the session checks batched results against per-sample runs
and falls back to per-sample execution when they differ, so a wrong guess cannot go unnoticed.
"""
from __future__ import annotations

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, axis_of, op


@op("reshape")
def _reshape(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    shape = a.ints("shape")
    shape = [x.shape[i] if s == 0 and len(shape) == x.ndim else s for i, s in enumerate(shape)]
    if ctx.batch and shape and shape[0] == 1 and x.ndim and x.shape[0] == ctx.batch:
        shape[0] = ctx.batch
    return x.reshape(shape)


@op("transpose")
def _transpose(a: Args, ctx: Context) -> np.ndarray:
    return np.transpose(a["x"], a.ints("perm"))


@op("squeeze")
def _squeeze(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = a.ints("axes")
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(axis_of(i, x.ndim) for i in axes))


@op("expand_dims")
def _expand_dims(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    out_rank = x.ndim + len(a.ints("axes"))
    return np.expand_dims(x, tuple(sorted(axis_of(i, out_rank) for i in a.ints("axes"))))


@op("slice_by_index")
def _slice_by_index(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    rank = x.ndim
    begin, end = a.ints("begin"), a.ints("end")
    stride = a.ints("stride", [1] * rank)
    begin_mask = a.ints("begin_mask", [0] * rank)
    end_mask = a.ints("end_mask", [0] * rank)
    squeeze_mask = a.ints("squeeze_mask", [0] * rank)
    index: list[slice | int] = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(begin[i])
            continue
        b = None if begin_mask[i] else begin[i]
        e = None if end_mask[i] else end[i]
        if (i == 0 and ctx.batch and x.shape[0] == ctx.batch and stride[i] == 1
                and (b in (None, 0)) and e == 1):
            e = None  # the batch-1 program's "first (only) sample" is every sample of the batch
        # MIL's end is exclusive and may exceed the dim; numpy slicing clamps the same way
        index.append(slice(b, e, stride[i]))
    return x[tuple(index)]


@op("slice_by_size")
def _slice_by_size(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    begin, size = a.ints("begin"), a.ints("size")
    index = tuple(slice(b + (x.shape[i] if b < 0 else 0), None if s == -1 else b + (x.shape[i] if b < 0 else 0) + s)
                  for i, (b, s) in enumerate(zip(begin, size)))
    return x[index]


@op("gather")
def _gather(a: Args, ctx: Context) -> np.ndarray:
    x, idx = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64)
    axis = axis_of(a.int("axis", 0), x.ndim)
    batch_dims = a.int("batch_dims", 0)
    if np.any(idx >= x.shape[axis]) or np.any(idx < -x.shape[axis]):
        # on device an out-of-range index is undefined behaviour; here it is an error
        raise RuntimeLoadError(f"gather index out of range for axis of size {x.shape[axis]}")
    if batch_dims == 0:
        return np.take(x, idx, axis=axis)
    lead = x.shape[:batch_dims]
    xs = x.reshape((-1,) + x.shape[batch_dims:])
    ids = idx.reshape((-1,) + idx.shape[batch_dims:])
    out = np.stack([np.take(xs[i], ids[i], axis=axis - batch_dims) for i in range(xs.shape[0])])
    return out.reshape(lead + out.shape[1:])


@op("gather_along_axis")
def _gather_along_axis(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    axis = a.int("axis", 0)
    idx = np.asarray(a["indices"]).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx, axis=axis)


@op("concat")
def _concat(a: Args, ctx: Context) -> np.ndarray:
    values = [np.asarray(v) for v in a.list("values")]
    axis = a.int("axis")
    if a.bool("interleave", False):
        stacked = np.stack(values, axis=axis_of(axis, values[0].ndim) + 1)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@op("stack")
def _stack(a: Args, ctx: Context) -> np.ndarray:
    return np.stack([np.asarray(v) for v in a.list("values")], axis=a.int("axis"))


@op("split")
def _split(a: Args, ctx: Context) -> tuple[np.ndarray, ...]:
    x = np.asarray(a["x"])
    axis = a.int("axis")
    sizes = a.ints("split_sizes")
    if sizes is None:
        return tuple(np.split(x, a.int("num_splits"), axis=axis))
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@op("tile")
def _tile(a: Args, ctx: Context) -> np.ndarray:
    return np.tile(a["x"], a.ints("reps"))


@op("pad")
def _pad(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    pads = a.ints("pad")
    k = len(pads) // 2
    width = [(0, 0)] * (x.ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in range(k)]
    mode = a.str("mode", "constant")
    if mode == "constant":
        # filled buffer + one slice assignment (several times faster than np.pad), laid out in
        # x's memory order: a channels-last input (a conv result) stays channels-last for the
        # conv that follows, instead of being transposed here and back there
        order = tuple(int(i) for i in np.argsort([-abs(st) for st in x.strides], kind="stable")) if x.ndim > 1 else (0,)
        shape = [d + b + e for d, (b, e) in zip(x.shape, width)]
        value = a.float("constant_val", 0.0)
        alloc = np.zeros if value == 0 else (lambda sh, dt: np.full(sh, value, dt))
        out = alloc([shape[i] for i in order], x.dtype).transpose(np.argsort(order))
        out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, width))] = x
        return out
    if mode in ("reflect", "replicate"):
        return np.pad(x, width, mode="reflect" if mode == "reflect" else "edge")
    raise RuntimeLoadError(f"pad mode {mode!r} is not supported by the emulator")


@op("shape")
def _shape(a: Args, ctx: Context) -> np.ndarray:
    return np.asarray(np.shape(a["x"]), dtype=np.int32)


@op("fill")
def _fill(a: Args, ctx: Context) -> np.ndarray:
    shape = a.ints("shape")
    if ctx.batch and shape and shape[0] == 1:
        shape[0] = ctx.batch
    return np.full(shape, a.float("value", 0.0), dtype=np.float32)


@op("fill_like")
def _fill_like(a: Args, ctx: Context) -> np.ndarray:
    return np.full(np.shape(a["ref_tensor"]), a.float("value", 0.0), dtype=np.float32)


@op("range_1d")
def _range_1d(a: Args, ctx: Context) -> np.ndarray:
    start, end, step = np.asarray(a["start"]), np.asarray(a["end"]), np.asarray(a["step"])
    out = np.arange(start.item(), end.item(), step.item())
    return out.astype(np.float32 if out.dtype.kind == "f" else np.int32)


@op("cumsum")
def _cumsum(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    axis = a.int("axis", 0)
    if a.bool("reverse", False):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis)
    if a.bool("exclusive", False):
        out = out - x
    return np.flip(out, axis) if a.bool("reverse", False) else out


@op("band_part")
def _band_part(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    lower, upper = a.int("lower", -1), a.int("upper", -1)
    m, n = x.shape[-2:]
    i, j = np.ogrid[:m, :n]
    keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
    return np.where(keep, x, 0).astype(x.dtype)


@op("gather_nd")
def _gather_nd(a: Args, ctx: Context) -> np.ndarray:
    x, idx = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64)
    batch_dims = a.int("batch_dims", 0)
    k = idx.shape[-1]
    if np.any(idx >= np.array(x.shape[batch_dims:batch_dims + k])) or np.any(idx < 0):
        raise RuntimeLoadError("gather_nd index out of range")
    if batch_dims == 0:
        if (ctx.batch and x.ndim and x.shape[0] == ctx.batch and idx.ndim > 1 and idx.shape[0] == 1
                and not np.any(idx[..., 0])):
            # a batch-1 program indexing "sample 0" (e.g. expanding an attention mask) means each sample
            return np.concatenate([x[b:b + 1][tuple(np.moveaxis(idx, -1, 0))] for b in range(ctx.batch)])
        return x[tuple(np.moveaxis(idx, -1, 0))]
    lead = x.shape[:batch_dims]
    xs = x.reshape((-1,) + x.shape[batch_dims:])
    ids = idx.reshape((-1,) + idx.shape[batch_dims:])
    out = np.stack([xs[i][tuple(np.moveaxis(ids[i], -1, 0))] for i in range(xs.shape[0])])
    return out.reshape(lead + out.shape[1:])


@op("reverse")
def _reverse(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = a.ints("axes")
    return np.flip(x, axis=None if axes is None else tuple(axis_of(i, x.ndim) for i in axes))


@op("reverse_sequence")
def _reverse_sequence(a: Args, ctx: Context) -> np.ndarray:
    """Along ``batch_axis``, sample i has its first ``lengths[i]`` steps on ``seq_axis`` reversed."""
    x = np.asarray(a["x"])
    seq_axis, batch_axis = axis_of(a.int("seq_axis", 0), x.ndim), axis_of(a.int("batch_axis", 0), x.ndim)
    lengths = np.asarray(a["lengths"]).reshape(-1).astype(np.int64)
    if lengths.size != x.shape[batch_axis] or np.any(lengths < 0) or np.any(lengths > x.shape[seq_axis]):
        raise RuntimeLoadError(f"reverse_sequence: lengths {lengths.tolist()} for shape {x.shape}")
    out = np.array(x, copy=True)
    for i, n in enumerate(lengths):
        src = [slice(None)] * x.ndim
        src[batch_axis], src[seq_axis] = i, slice(0, int(n))
        out[tuple(src)] = np.flip(x[tuple(src)], axis=seq_axis - (batch_axis < seq_axis))
    return out


@op("flatten2d")
def _flatten2d(a: Args, ctx: Context) -> np.ndarray:
    x = np.asarray(a["x"])
    axis = axis_of(a.int("axis", 1), x.ndim)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
