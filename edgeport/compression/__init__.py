"""Torch-level compression, format-blind: an ordered list of steps applied before conversion."""
from __future__ import annotations

from typing import Any, Sequence

from .base import STEPS, CompressionStep, StepReport, parse_step, step_to_dict

__all__ = ["STEPS", "CompressionStep", "StepReport", "compress", "parse_step", "step_to_dict"]


def compress(module: Any, steps: Sequence[CompressionStep], data: Any) -> tuple[Any, list[StepReport]]:
    """Apply ``steps`` in order to copies of ``module``; the original is every step's teacher."""
    reports = []
    current = module
    for step in steps:
        current, rep = step.apply(current, data, module)
        reports.append(rep)
    return current, reports
