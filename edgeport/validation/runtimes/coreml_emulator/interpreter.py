"""Executing a loaded ML Program: constants and weight decompression once at load, then the
compute ops in program order, each result coerced to the type the program declares for it.

That coercion is what makes a FLOAT16 program behave like one: every op computes in float32
(numpy) and its result is rounded to fp16, as the GPU / Neural Engine store every intermediate
tensor in fp16. The arithmetic *inside* an op (accumulation order and width) is not the
device's, so results are close to, not bit-exact with, an iPhone's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ....errors import RuntimeLoadError
from . import ops_constexpr, ops_elementwise, ops_nn, ops_shape  # noqa: F401  (register the ops)
from .program import Operation, Program, TensorType
from .registry import OPS, Args, Context

_INT_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
              "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
              "INT4": np.int8, "UINT4": np.uint8, "UINT1": np.uint8, "UINT2": np.uint8,
              "UINT3": np.uint8, "UINT6": np.uint8}


def coerce(value: Any, ttype: TensorType | None) -> Any:
    """``value`` as the declared type: fp16 rounding, float32, the integer width, bool."""
    if ttype is None or isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
        return value
    dt = ttype.dtype
    if dt == "FLOAT16":
        with np.errstate(over="ignore", invalid="ignore"):  # fp16 overflow -> inf, as on device
            return np.asarray(value, dtype=np.float32).astype(np.float16).astype(np.float32)
    if dt in ("FLOAT32", "FLOAT64", "BFLOAT16"):
        arr = np.asarray(value, dtype=np.float32)
        if dt == "BFLOAT16":  # keep the top 16 bits (round to nearest even)
            bits = arr.view(np.uint32).astype(np.uint64)
            bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
            arr = bits.view(np.float32)
        return arr
    if dt in _INT_TYPES:
        return np.asarray(value).astype(_INT_TYPES[dt])
    if dt == "BOOL":
        return np.asarray(value).astype(bool)
    return value


def missing_ops(program: Program) -> list[str]:
    """Op types of ``program`` the emulator cannot execute (control flow counts as missing)."""
    missing = set()
    for op in program.operations:
        if op.type != "const" and (op.type not in OPS or op.has_blocks):
            missing.add(op.type)
    return sorted(missing)


class Interpreter:
    """A program made runnable: ``run(feeds, batch)`` -> {program output name: array}."""

    def __init__(self, program: Program):
        self.program = program
        missing = missing_ops(program)
        if missing:
            raise RuntimeLoadError(f"{program.path.name}: the CoreML emulator does not implement "
                                   f"op(s): {', '.join(missing)}")
        self.consts: dict[str, Any] = {}
        self.steps: list[Operation] = []
        self.decompressed: dict[str, int] = {}
        ctx = Context()
        for op in program.operations:
            if op.type == "const":
                name, ttype = op.outputs[0]
                self.consts[name] = coerce(op.inputs["val"][0][1], ttype)
            elif op.type.startswith("constexpr_"):
                # decompressed once, as CoreML does when it loads the model
                self._execute(op, self.consts, ctx)
                self.decompressed[op.type] = self.decompressed.get(op.type, 0) + 1
            else:
                self.steps.append(op)
        self.peak_elements = max((int(np.prod([max(d, 1) for d in t.shape])) for op in self.steps
                                  for _, t in op.outputs if t is not None and t.shape), default=1)

    def run(self, feeds: dict[str, np.ndarray], batch: int | None = None) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.consts)
        for name, ttype in self.program.inputs:
            if name not in feeds:
                raise RuntimeLoadError(f"missing input {name!r}")
            env[name] = coerce(feeds[name], ttype)
        ctx = Context(batch=batch)
        for op in self.steps:
            self._execute(op, env, ctx)
        return {name: env[name] for name in self.program.outputs}

    def _execute(self, op: Operation, env: dict[str, Any], ctx: Context) -> None:
        values: dict[str, list[Any]] = {}
        for key, args in op.inputs.items():
            resolved = []
            for kind, ref in args:
                if kind == "var":
                    if ref not in env:
                        raise RuntimeLoadError(f"op {op.type}: input {ref!r} is not defined before use")
                    resolved.append(env[ref])
                else:
                    resolved.append(ref)
            values[key] = resolved
        try:
            result = OPS[op.type](Args(op.type, values), ctx)
        except RuntimeLoadError:
            raise
        except (ValueError, IndexError, TypeError) as exc:
            raise RuntimeLoadError(f"op {op.type} ({op.outputs[0][0]}) failed in the emulator: {exc}") from exc
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise RuntimeLoadError(f"op {op.type} gave {len(results)} outputs, program declares {len(op.outputs)}")
        for (name, ttype), value in zip(op.outputs, results):
            value = coerce(value, ttype)
            if ctx.batch is None and ttype is not None and ttype.shape is not None and hasattr(value, "shape"):
                declared = ttype.shape
                if len(declared) != np.ndim(value) or any(d >= 0 and d != s for d, s in zip(declared, np.shape(value))):
                    raise RuntimeLoadError(f"op {op.type} ({name}) gave shape {tuple(np.shape(value))}, "
                                           f"the program declares {declared}")
            env[name] = value
