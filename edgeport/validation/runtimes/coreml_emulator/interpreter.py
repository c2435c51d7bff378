"""Executing a loaded ML Program: constants and weight decompression once at load, then the
compute ops in program order, each result coerced to the type the program declares for it.

That coercion is what makes a FLOAT16 program behave like one: every op computes in float32
(numpy) and its result is rounded to fp16, as the GPU / Neural Engine store every intermediate
tensor in fp16. The arithmetic *inside* an op (accumulation order and width) is not the
device's, so results are close to, not bit-exact with, an iPhone's.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ....errors import RuntimeLoadError
from . import (ops_constexpr, ops_control, ops_conv, ops_elementwise, ops_indexing, ops_nn,  # noqa: F401
               ops_pool, ops_recurrent, ops_resample, ops_shape)  # (importing a module registers its ops)
from .fp16 import round_fp16
from .plan import EPILOGUE_OPS, FRESH_RESULT, StepPlan, plan_steps
from .program import Block, Operation, Program, TensorType, walk
from .registry import OPS, Args, Context

_INT_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
              "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
              "INT4": np.int8, "UINT4": np.uint8, "UINT1": np.uint8, "UINT2": np.uint8,
              "UINT3": np.uint8, "UINT6": np.uint8}


def coerce(value: Any, ttype: TensorType | None, fresh: bool = False) -> Any:
    """``value`` as the declared type: fp16 rounding, float32, the integer width, bool.
    ``fresh``: ``value`` is a new array no one else holds (its buffer may take the result)."""
    if ttype is None or isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
        return value
    dt = ttype.dtype
    if dt == "FLOAT16":
        return round_fp16(value, inplace=fresh)  # fp16 overflow -> inf, as on device
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


# Ops whose result is made of input values (or max/min of them): fed fp16 values, they give
# fp16-representable values, so rounding their output again would change nothing. Skipping it
# is exact and saves a pass over the largest tensors.
VALUE_PRESERVING = frozenset({
    "relu", "relu6", "max_pool", "reshape", "transpose", "squeeze", "expand_dims", "slice_by_index",
    "slice_by_size", "gather", "gather_along_axis", "concat", "stack", "split", "tile", "maximum",
    "minimum", "abs", "select", "identity", "reduce_max", "reduce_min", "clip", "pad",
})


#: ops that run nested blocks (the emulator runs them through ``Context.run_block``)
BLOCK_OPS = frozenset({"while_loop", "cond"})
#: no declared tensor may exceed this many elements (4 GiB of float32): a crafted program must not
#: make the emulator allocate without bound
MAX_TENSOR_ELEMENTS = 1 << 30


def missing_ops(program: Program) -> list[str]:
    """Op types of ``program`` (nested blocks included) the emulator cannot execute."""
    missing = set()
    for op in walk(program.operations):
        if op.type == "const":
            continue
        if op.type not in OPS or (op.has_blocks and op.type not in BLOCK_OPS):
            missing.add(op.type)
    return sorted(missing)


def _epilogue(bounds: tuple[float, float] | None, fp16: bool) -> Any:
    """What a conv applies to each block of its result, in place: a folded clip, then the fp16
    rounding of a FLOAT16 program."""
    lo, hi = (np.float32(bounds[0]), np.float32(bounds[1])) if bounds else (None, None)

    def apply(block: np.ndarray) -> None:
        if lo is not None:
            np.clip(block, lo, hi, out=block)
        if fp16:
            round_fp16(block, inplace=True, bounds=bounds)
    return apply


class Interpreter:
    """A program made runnable: ``run(feeds, batch)`` -> {program output name: array}."""

    def __init__(self, program: Program):
        self.program = program
        missing = missing_ops(program)
        if missing:
            raise RuntimeLoadError(f"coreml-emulator lacks ops: {', '.join(missing)} ({program.path.name})")
        self.consts: dict[str, Any] = {}
        self.decompressed: dict[str, int] = {}
        self.skip_rounding: set[int] = set()
        declared: dict[str, TensorType | None] = {name: t for name, t in program.inputs}
        for op in walk(program.operations):
            declared.update({name: t for name, t in op.outputs})
            for block in op.blocks:
                declared.update({name: t for name, t in block.inputs})
        for name, t in declared.items():
            if t is not None and t.shape and math.prod(max(d, 1) for d in t.shape) > MAX_TENSOR_ELEMENTS:
                raise RuntimeLoadError(f"{program.path.name}: tensor {name!r} is declared with shape "
                                       f"{list(t.shape)}, over the emulator's {MAX_TENSOR_ELEMENTS}-element limit")
        ctx = Context()
        # consts (and constexpr decompression) anywhere, nested blocks included, are evaluated once
        # at load, as CoreML does when it compiles the model; what is left are the compute steps
        self.steps = self._prepare(program.operations, ctx)
        self.block_steps: dict[int, list[Operation]] = {}
        for op in walk(program.operations):
            for block in op.blocks:
                self.block_steps[id(block)] = self._prepare(block.operations, ctx)
        keep = set(program.outputs) | set(self.consts) | {n for n, _ in program.inputs}
        self.plans = plan_steps(self.steps, keep, self.consts)
        every = list(walk(program.operations))
        self.skip_rounding = {id(op) for op in every if op.type not in ("const",) and self._preserves_fp16(op, declared)}
        self.peak_elements = max((math.prod(max(d, 1) for d in t.shape) for op in every
                                  for _, t in op.outputs if t is not None and t.shape), default=1)

    def _prepare(self, operations: list[Operation], ctx: Context) -> list[Operation]:
        steps = []
        for op in operations:
            if op.type == "const":
                if "val" not in op.inputs or not op.outputs:
                    raise RuntimeLoadError("const op without a value")
                name, ttype = op.outputs[0]
                self.consts[name] = coerce(op.inputs["val"][0][1], ttype)
            elif op.type.startswith("constexpr_"):
                # decompressed once, as CoreML does when it loads the model
                self._execute(op, self.consts, ctx)
                self.decompressed[op.type] = self.decompressed.get(op.type, 0) + 1
            else:
                steps.append(op)
        return steps

    @staticmethod
    def _preserves_fp16(op: Operation, declared: dict[str, TensorType | None]) -> bool:
        if op.type not in VALUE_PRESERVING or any(t is None or t.dtype != "FLOAT16" for _, t in op.outputs):
            return False
        for args in op.inputs.values():
            for kind, ref in args:
                t = declared.get(ref) if kind == "var" else None
                if kind == "var" and (t is None or (t.dtype.startswith("FLOAT") and t.dtype != "FLOAT16")):
                    return False
                if kind == "val" and isinstance(ref, np.ndarray) and ref.dtype.kind == "f":
                    return False  # an inline float constant may not be fp16-exact: round
        return True

    def run(self, feeds: dict[str, np.ndarray], batch: int | None = None) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.consts)
        for name, ttype in self.program.inputs:
            if name not in feeds:
                raise RuntimeLoadError(f"missing input {name!r}")
            env[name] = coerce(feeds[name], ttype)
        ctx = Context(batch=batch)
        ctx.run_block = lambda block, values: self._run_block(block, values, env, ctx)
        for op, plan in zip(self.steps, self.plans):
            if plan.alias is not None:  # an activation the conv before already applied
                env[plan.alias[0]] = env[plan.alias[1]]
            else:
                self._execute(op, env, ctx, plan)
            for name in plan.dying:
                env.pop(name, None)
        return {name: env[name] for name in self.program.outputs}

    def _run_block(self, block: Block, values: list[Any], env: dict[str, Any], ctx: Context) -> list[Any]:
        """Run a nested block in the program's environment (MIL names are unique program-wide,
        so a block's values can live beside the outer ones) and return its outputs."""
        if len(values) != len(block.inputs):
            raise RuntimeLoadError(f"block takes {len(block.inputs)} inputs, {len(values)} given")
        for (name, ttype), value in zip(block.inputs, values):
            env[name] = coerce(value, ttype)
        for op in self.block_steps[id(block)]:
            self._execute(op, env, ctx)
        try:
            return [env[name] for name in block.outputs]
        except KeyError as exc:
            raise RuntimeLoadError(f"block output {exc} is not defined") from exc

    def _execute(self, op: Operation, env: dict[str, Any], ctx: Context, plan: StepPlan | None = None) -> None:
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
        fp16 = bool(op.outputs) and op.outputs[0][1] is not None and op.outputs[0][1].dtype == "FLOAT16"
        epilogue = None
        if op.type in EPILOGUE_OPS and (fp16 or (plan is not None and plan.activation)):
            epilogue = _epilogue(plan.activation if plan is not None else None, fp16)
        args = Args(op.type, values, op.blocks, fp16, plan.owned if plan is not None else frozenset(), epilogue,
                    plan.pad if plan is not None else None)
        try:
            result = OPS[op.type](args, ctx)
        except RuntimeLoadError:
            raise
        except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError) as exc:
            raise RuntimeLoadError(f"op {op.type} ({op.outputs[0][0]}) failed in the emulator: {exc}") from exc
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise RuntimeLoadError(f"op {op.type} gave {len(results)} outputs, program declares {len(op.outputs)}")
        exact = id(op) in self.skip_rounding or epilogue is not None  # the kernel rounded per block
        fresh = op.type in FRESH_RESULT
        for (name, ttype), value in zip(op.outputs, results):
            value = value if exact else coerce(value, ttype, fresh)
            padded = plan is not None and plan.pad is not None  # holds the folded pad's result
            if ctx.batch is None and not padded and ttype is not None and ttype.shape is not None and hasattr(value, "shape"):
                declared = ttype.shape
                if len(declared) != np.ndim(value) or any(d >= 0 and d != s for d, s in zip(declared, np.shape(value))):
                    raise RuntimeLoadError(f"op {op.type} ({name}) gave shape {tuple(np.shape(value))}, "
                                           f"the program declares {declared}")
            env[name] = value
