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
    run on many samples at once (shape constants with a leading 1 then stand for the batch)."""

    batch: int | None = None


class Args:
    """The resolved inputs of one op: parameter name -> list of values (variadic inputs have many)."""

    def __init__(self, op_type: str, values: dict[str, list[Any]]):
        self.op_type = op_type
        self.values = values

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
