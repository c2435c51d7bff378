"""The compression-step interface: torch-level, format-blind changes made before conversion.

A step is a frozen dataclass (its fields are its settings, read strictly from a profile's
``[[compression]]`` table or from CLI flags) with ``apply(module, context)`` returning the changed
copy and a :class:`StepReport`. Steps run in the plan's order; each receives a
:class:`StepContext`: the original model (the teacher of distillation), unlabelled calibration
data, the train split recovery may learn from (never the eval/golden split), the target's channel
multiple, a seed and the steps that ran before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, runtime_checkable

from ..errors import ConfigError, UnknownNameError
from ..registry import load_ref
from ..strict import from_table, to_table

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..progress import Progress


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


@dataclass(frozen=True)
class StepContext:
    """What every step of one compression run shares.

    ``calibration`` is unlabelled data for statistics (BatchNorm re-estimation, importance);
    ``train`` the data recovery may learn from (labels optional) — never the split parity and
    accuracy are judged on. ``example`` is one batch of inputs, in the model's input order, for
    tracing (dependency graphs, FLOP counts). ``channel_multiple`` is the target's preferred
    multiple for kept channel counts (vector width of its CPU kernels); ``earlier`` the steps
    already applied, in order (recovery runs their schedules).
    """

    teacher: Any
    calibration: "Dataset | None" = None
    train: "Dataset | None" = None
    example: tuple[Any, ...] = ()
    channel_multiple: int = 1
    seed: int = 0
    earlier: tuple["CompressionStep", ...] = ()
    #: (name, kind, class axis) of every model output, in order; kind is "classification",
    #: "segmentation", "regression" or "embedding" (what a distillation loss matches)
    outputs: tuple[tuple[str, str, int | None], ...] = ()
    #: where long steps show progress (``None``: silent)
    progress: "Progress | None" = None


@runtime_checkable
class CompressionStep(Protocol):
    kind: ClassVar[str]

    def apply(self, module: Any, context: StepContext) -> tuple[Any, StepReport]:
        """A compressed *copy* of ``module`` and the report of what was done."""


#: step kind -> "module:Class"; the classes are light to import (torch is imported in ``apply``)
STEPS: dict[str, str] = {
    "magnitude": "edgeport.compression.magnitude:MagnitudePruning",
    "channels": "edgeport.compression.structured:ChannelPruning",
    "low_rank": "edgeport.compression.low_rank:LowRankFactorization",
    "distill": "edgeport.compression.distill:Distillation",
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
