"""The compression-step interface: torch-level, format-blind changes made before conversion.

A step is a frozen dataclass (its fields are its settings, read strictly from a profile's
``[[compression]]`` table or from CLI flags) with ``apply(module, data, teacher)`` returning the
changed copy and a :class:`StepReport`. Steps run in the plan's order; each receives the original
model as ``teacher`` (for distillation-style recovery) and unlabelled calibration data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, runtime_checkable

from ..errors import ConfigError, UnknownNameError
from ..registry import load_ref
from ..strict import from_table, to_table

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset


@dataclass(frozen=True)
class StepReport:
    """What one step did: its settings, measured statistics, and what they mean for the artifact.

    ``zeros`` is the share of prunable weights that are exactly zero afterwards (what a format's
    sparse storage can use); ``note`` says in words what the step buys on which runtime.
    """

    kind: str
    settings: Mapping[str, Any]
    stats: Mapping[str, Any] = field(default_factory=dict)
    zeros: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.settings), **dict(self.stats), "note": self.note}


@runtime_checkable
class CompressionStep(Protocol):
    kind: ClassVar[str]

    def apply(self, module: Any, data: "Dataset | None", teacher: Any) -> tuple[Any, StepReport]:
        """A compressed *copy* of ``module`` and the report of what was done."""


#: step kind -> "module:Class"; the classes are light to import (torch is imported in ``apply``)
STEPS: dict[str, str] = {
    "magnitude": "edgeport.compression.magnitude:MagnitudePruning",
}


def step_class(kind: str) -> type:
    if kind not in STEPS:
        raise UnknownNameError("compression step", kind, list(STEPS))
    return load_ref(STEPS[kind], "compression step")


def parse_step(table: Mapping[str, Any], where: str) -> CompressionStep:
    """One ``[[compression]]`` table (``kind = "..."`` plus the step's settings) as a step."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    settings = dict(table)
    kind = settings.pop("kind", None)
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: missing key 'kind' (one of: {', '.join(STEPS)})")
    return from_table(step_class(kind), settings, f"{where} ({kind})")


def step_to_dict(step: CompressionStep) -> dict[str, Any]:
    return {"kind": step.kind, **to_table(step)}
