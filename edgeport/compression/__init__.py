"""Torch-level compression, format-blind: an ordered list of steps applied before conversion."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from .base import STEPS, CompressionStep, StepContext, StepReport, parse_step, step_to_dict

__all__ = ["STEPS", "CompressionStep", "StepContext", "StepReport", "compress", "parse_step", "step_to_dict"]


def compress(module: Any, steps: Sequence[CompressionStep], context: StepContext) -> tuple[Any, list[StepReport]]:
    """Apply ``steps`` in order to copies of ``module`` (``context.teacher``, the original, is
    every step's teacher); each step sees the steps before it in ``context.earlier``."""
    reports = []
    current = module
    for i, step in enumerate(steps):
        current, rep = step.apply(current, replace(context, earlier=tuple(steps[:i])))
        reports.append(rep)
    return current, reports
