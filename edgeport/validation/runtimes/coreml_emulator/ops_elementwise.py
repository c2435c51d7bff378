"""Element-wise MIL ops: binary arithmetic and comparisons (numpy broadcasting, as MIL's),
activations, unary math, reductions, cast and select. Float math runs in float32; the interpreter
rounds each result to the program's declared type (fp16 for FLOAT16 programs)."""
from __future__ import annotations

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, f32, op


def _num(x: object) -> np.ndarray:
    a = np.asarray(x)
    return a.astype(np.float32) if a.dtype == np.float16 else a


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}


def _binary(fn):  # noqa: ANN001, ANN202 - tiny closure factory
    def run(a: Args, ctx: Context) -> np.ndarray:
        x, y = _num(a["x"]), _num(a["y"])
        if (a.owned("x") and x.dtype == np.float32 and np.result_type(x, y) == np.float32
                and np.broadcast_shapes(x.shape, np.shape(y)) == x.shape):
            return fn(x, y, out=x)  # x dies here and nobody else holds it: reuse its buffer
        return fn(x, y)
    return run


for _name, _fn in _BINARY.items():
    op(_name)(_binary(_fn))


@op("real_div")
def _real_div(a: Args, ctx: Context) -> np.ndarray:
    x, y = _num(a["x"]), _num(a["y"])
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        # integer real_div: true division, then the int32 result type truncates toward zero
        return np.trunc(x / y).astype(np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return f32(x) / f32(y)


@op("floor_div")
def _floor_div(a: Args, ctx: Context) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(_num(a["x"]), _num(a["y"]))


@op("mod")
def _mod(a: Args, ctx: Context) -> np.ndarray:
    return np.mod(_num(a["x"]), _num(a["y"]))


@op("pow")
def _pow(a: Args, ctx: Context) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.power(f32(a["x"]), f32(a["y"]))


# ---- unary --------------------------------------------------------------------------------------
def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


_UNARY = {
    # np.clip with both bounds: several times faster than np.maximum / np.minimum here
    "relu": lambda x: np.clip(x, np.float32(0), np.float32(np.inf)),
    "relu6": lambda x: np.clip(x, np.float32(0), np.float32(6)),
    "sigmoid": _sigmoid,
    "tanh": np.tanh, "exp": np.exp, "exp2": np.exp2, "sqrt": np.sqrt, "abs": np.abs, "sign": np.sign,
    "ceil": np.ceil, "floor": np.floor, "round": np.round, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "erf": _erf, "square": np.square,
    "silu": lambda x: x * _sigmoid(x),
    "softplus": lambda x: np.logaddexp(np.float32(0), x),
    "softsign": lambda x: x / (np.float32(1) + np.abs(x)),
}


def _unary(fn):  # noqa: ANN001, ANN202
    def run(a: Args, ctx: Context) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return fn(f32(a["x"]))
    return run


for _name, _fn in _UNARY.items():
    op(_name)(_unary(_fn))


@op("logical_not")
def _logical_not(a: Args, ctx: Context) -> np.ndarray:
    return np.logical_not(a["x"])


@op("log")
def _log(a: Args, ctx: Context) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(f32(a["x"]) + np.float32(a.float("epsilon", 0.0)))


@op("rsqrt")
def _rsqrt(a: Args, ctx: Context) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float32(1) / np.sqrt(f32(a["x"]) + np.float32(a.float("epsilon", 1e-12)))


@op("inverse")
def _inverse(a: Args, ctx: Context) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.float32(1) / (f32(a["x"]) + np.float32(a.float("epsilon", 1e-4)))


@op("clip")
def _clip(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    # np.clip with both bounds is several times faster than np.maximum + np.minimum (which
    # NaN-check every element); an input that dies here takes the result in place
    return np.clip(x, np.float32(a.float("alpha")), np.float32(a.float("beta")), out=x if a.owned("x") else None)


@op("threshold")
def _threshold(a: Args, ctx: Context) -> np.ndarray:
    return np.maximum(f32(a["x"]), np.float32(a.float("alpha")))


@op("thresholded_relu")
def _thresholded_relu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])  # x where x >= alpha, else 0 (torch's hardswish uses alpha = -3)
    return np.where(x >= np.float32(a.float("alpha", 1.0)), x, np.float32(0))


@op("clamped_relu")
def _clamped_relu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    alpha, beta = np.float32(a.float("alpha", 0.0)), np.float32(a.float("beta", 6.0))
    return np.minimum(np.where(x >= 0, x, alpha * x), beta)


@op("scaled_tanh")
def _scaled_tanh(a: Args, ctx: Context) -> np.ndarray:
    return np.float32(a.float("alpha", 1.0)) * np.tanh(np.float32(a.float("beta", 1.0)) * f32(a["x"]))


@op("softplus_parametric")
def _softplus_parametric(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)  # one alpha / beta per channel (axis 1)
    alpha, beta = f32(a["alpha"]).reshape(shape), f32(a["beta"]).reshape(shape)
    return alpha * np.logaddexp(np.float32(0), beta * x)


@op("leaky_relu")
def _leaky_relu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    return np.where(x >= 0, x, x * np.float32(a.float("alpha", 0.01)))


@op("elu")
def _elu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    return np.where(x > 0, x, np.float32(a.float("alpha", 1.0)) * np.expm1(np.minimum(x, 0)))


@op("prelu")
def _prelu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    alpha = f32(a["alpha"]).reshape((1, -1) + (1,) * (x.ndim - 2))  # one slope per channel (axis 1)
    return np.where(x >= 0, x, x * alpha)


@op("sigmoid_hard")
def _sigmoid_hard(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    return np.clip(np.float32(a.float("alpha", 0.2)) * x + np.float32(a.float("beta", 0.5)), 0, 1)


@op("linear_activation")
def _linear_activation(a: Args, ctx: Context) -> np.ndarray:
    return np.float32(a.float("alpha")) * f32(a["x"]) + np.float32(a.float("beta", 0.0))


@op("gelu")
def _gelu(a: Args, ctx: Context) -> np.ndarray:
    x = f32(a["x"])
    mode = a.str("mode", "EXACT")
    if mode == "EXACT":
        return np.float32(0.5) * x * (np.float32(1) + _erf(x / np.float32(np.sqrt(2.0))))
    if mode == "TANH_APPROXIMATION":
        inner = np.float32(np.sqrt(2.0 / np.pi)) * (x + np.float32(0.044715) * x ** 3)
        return np.float32(0.5) * x * (np.float32(1) + np.tanh(inner))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(np.float32(1.702) * x)
    raise RuntimeLoadError(f"gelu mode {mode!r} is not supported by the emulator")


# ---- reductions ---------------------------------------------------------------------------------
def _axes(a: Args) -> tuple[int, ...] | None:
    axes = a.ints("axes")
    return None if axes is None else tuple(axes)


_REDUCE = {
    "reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": lambda x, axis, keepdims: np.logaddexp.reduce(x, axis=axis, keepdims=keepdims),
}


def _reduce(fn):  # noqa: ANN001, ANN202
    def run(a: Args, ctx: Context) -> np.ndarray:
        x = _num(a["x"])
        if x.dtype.kind == "f":
            x = f32(x)
        return np.asarray(fn(x, axis=_axes(a), keepdims=a.bool("keep_dims", False)))
    return run


for _name, _fn in _REDUCE.items():
    op(_name)(_reduce(_fn))


@op("reduce_argmax", "reduce_argmin")
def _reduce_arg(a: Args, ctx: Context) -> np.ndarray:
    x = _num(a["x"])
    axis = a.int("axis", -1)
    fn = np.argmax if a.op_type == "reduce_argmax" else np.argmin
    out = fn(x, axis=axis)
    return np.expand_dims(out, axis) if a.bool("keep_dims", False) else out


# ---- types and selection ------------------------------------------------------------------------
_CAST = {"fp16": np.float32, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int64": np.int64,
         "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "bool": np.bool_}


@op("cast")
def _cast(a: Args, ctx: Context) -> np.ndarray:
    dtype = a.str("dtype")
    if dtype not in _CAST:
        raise RuntimeLoadError(f"cast to {dtype!r} is not supported by the emulator")
    x = np.asarray(a["x"])
    if x.dtype.kind == "f" and np.dtype(_CAST[dtype]).kind in "iu":
        x = np.trunc(x)  # float -> int casts truncate toward zero
    return x.astype(_CAST[dtype])  # fp16 targets are rounded by the interpreter (declared type)


@op("select")
def _select(a: Args, ctx: Context) -> np.ndarray:
    return np.where(np.asarray(a["cond"]).astype(bool), _num(a["a"]), _num(a["b"]))


@op("identity")
def _identity(a: Args, ctx: Context) -> np.ndarray:
    return np.asarray(a["x"])
