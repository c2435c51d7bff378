"""Precision names, checked once: every other module takes a :class:`Precision`."""
from __future__ import annotations

from enum import Enum

from .errors import UnknownNameError


class Precision(str, Enum):
    """How weights (and, where the format can, activations) are stored and computed."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"                  # calibrated / static where the runtime supports it
    INT8_DYNAMIC = "int8-dynamic"  # weights int8, activations quantized at run time or kept float
    LUT8 = "lut8"                  # palettized: 256-entry table per tensor
    LUT4 = "lut4"                  # palettized: 16-entry table per tensor

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:
        # equal to its name as a string, so it must hash like it (Enum hashes the member name)
        return str.__hash__(self.value)

    @classmethod
    def parse(cls, name: object) -> "Precision":
        """``name`` as a Precision; anything else is an :class:`UnknownNameError` listing the known."""
        if isinstance(name, cls):
            return name
        try:
            return cls(name)
        except ValueError:
            raise UnknownNameError("precision", str(name), [p.value for p in cls]) from None

    @property
    def is_integer(self) -> bool:
        """Weights stored as integers or table indices (the int8 / palettized family)."""
        return self in (Precision.INT8, Precision.INT8_DYNAMIC, Precision.LUT8, Precision.LUT4)


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
