"""The op table of the emulator and the argument access every op implementation uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ....errors import RuntimeLoadError

OpFn = Callable[["Args", "Context"], Any]
OPS: dict[str, OpFn] = {}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register an implementation under one or more MIL op names (a second one is refused)."""
    def wrap(fn: OpFn) -> OpFn:
        for n in names:
            if n in OPS:
                raise RuntimeError(f"emulator op {n!r} registered twice")
            OPS[n] = fn
        return fn
    return wrap


@dataclass
class Context:
    """Per-run state an op may need. ``batch``: the sample count when a batch-1 program is being
    run on many samples at once (shape constants with a leading 1 then stand for the batch).
    ``run_block(block, values)``: runs a nested block with its inputs bound to ``values`` and
    returns its outputs (control-flow ops)."""

    batch: int | None = None
    run_block: Callable[[Any, list[Any]], list[Any]] | None = None


class Args:
    """The resolved inputs of one op: parameter name -> list of values (variadic inputs have many).

    ``blocks``: the op's nested blocks (control flow). ``fp16``: the op's result is declared
    FLOAT16, for ops that carry state across steps internally (recurrent layers) and must round
    it as a FLOAT16 program stores it.
    """

    def __init__(self, op_type: str, values: dict[str, list[Any]], blocks: list[Any] | None = None,
                 fp16: bool = False, owned: frozenset[str] = frozenset(),
                 epilogue: Callable[[np.ndarray], None] | None = None,
                 out_pad: tuple[int, int, int, int] | None = None):
        self.op_type = op_type
        self.values = values
        self.blocks = blocks or []
        self.fp16 = fp16
        self._owned = owned
        #: for the ops in plan.EPILOGUE_OPS: applied in place to every C-contiguous block of the
        #: finished result (a folded activation, fp16 rounding); such an op must apply it
        self.epilogue = epilogue
        #: for the ops in plan.EPILOGUE_OPS: zero padding (top, bottom, left, right) of the two
        #: spatial axes the result must be returned with (a pad folded into the op)
        self.out_pad = out_pad

    def owned(self, key: str) -> bool:
        """The value of ``key`` is a fresh array only this op uses and nothing needs afterwards:
        the op may write its result into it (the interpreter decides, from the program)."""
        return key in self._owned

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> Any:
        if key not in self.values:
            raise RuntimeLoadError(f"op {self.op_type}: required input {key!r} is missing")
        return self.values[key][0]

    def get(self, key: str, default: Any = None) -> Any:
        vals = self.values.get(key)
        return vals[0] if vals else default

    def list(self, key: str) -> list[Any]:
        return list(self.values.get(key, []))

    def int(self, key: str, default: int | None = None) -> int:
        v = self.get(key)
        if v is None:
            if default is None:
                raise RuntimeLoadError(f"op {self.op_type}: required input {key!r} is missing")
            return default
        return int(np.asarray(v).reshape(()))

    def float(self, key: str, default: float | None = None) -> float:
        v = self.get(key)
        if v is None:
            if default is None:
                raise RuntimeLoadError(f"op {self.op_type}: required input {key!r} is missing")
            return default
        return float(np.asarray(v).reshape(()))

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.get(key)
        return default if v is None else bool(np.asarray(v).reshape(()))

    def ints(self, key: str, default: list[int] | None = None) -> list[int] | None:
        v = self.get(key)
        if v is None:
            return default
        return [int(i) for i in np.asarray(v).reshape(-1)]

    def str(self, key: str, default: str | None = None) -> str | None:
        v = self.get(key)
        if v is None:
            return default
        return v if isinstance(v, str) else str(v)


def f32(x: Any) -> np.ndarray:
    """A float32 view of a tensor (fp16 values are held as float32 inside the emulator)."""
    a = np.asarray(x)
    return a if a.dtype == np.float32 else a.astype(np.float32)


def axis_of(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
