"""The tolerance table: one visible row per precision, overridable per profile.

cosine / SQNR / max-abs are per output, against the source model's outputs on the same inputs.
``max_abs_rel`` is max |artifact - reference| divided by max |reference| (scale-free, so one row
serves logits and embeddings alike). top-1 agreement applies to classifier outputs; accuracy drop
to labelled data (top-1 of a classifier, pixel accuracy of a segmentation output); the regression
MAE increase to outputs with regression labels, as a fraction of the labels' standard deviation.
Agreement and accuracy figures are **fractions** (0.01 = one point).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..precision import Precision
from ..strict import from_table, limits, to_table

#: an accuracy drop above this is almost surely a unit mistake (points written as a fraction)
ACCURACY_DROP_CEILING = 0.25


@dataclass(frozen=True)
class Tolerance:
    """Limits for one precision."""

    cosine_min: float = field(metadata=limits(min=-1.0, max=1.0))
    sqnr_db_min: float = field(metadata=limits(min=-100.0, max=999.0, unit="dB"))
    max_abs_rel_max: float = field(metadata=limits(min=0.0, unit="(a fraction of max |reference|)"))
    top1_agreement_min: float = field(metadata=limits(min=0.0, max=1.0, unit="(a fraction: 0.95 = 95 %)"))
    accuracy_drop_max: float = field(metadata=limits(
        min=0.0, max=ACCURACY_DROP_CEILING, unit="(a fraction: 0.01 = 1 point)"))
    #: a default, so plans written before this key existed still read
    regression_mae_increase_max: float = field(default=0.05, metadata=limits(
        min=0.0, max=1.0, unit="(a fraction of the labels' standard deviation)"))

    def to_dict(self) -> dict[str, Any]:
        return to_table(self)


TOLERANCE_KEYS = ("cosine_min", "sqnr_db_min", "max_abs_rel_max", "top1_agreement_min", "accuracy_drop_max",
                  "regression_mae_increase_max")

_P = Precision
TOLERANCES: dict[Precision, Tolerance] = {
    #                cosine_min sqnr_db_min max_abs_rel_max top1_agreement_min accuracy_drop_max
    #                regression_mae_increase_max
    _P.FP32:         Tolerance(0.99999, 60.0, 1e-3, 0.999, 0.002, 0.005),
    _P.FP16:         Tolerance(0.9999, 35.0, 2e-2, 0.99, 0.005, 0.01),
    _P.BF16:         Tolerance(0.999, 25.0, 6e-2, 0.98, 0.01, 0.02),
    _P.INT8:         Tolerance(0.98, 14.0, 0.35, 0.95, 0.02, 0.05),
    _P.INT8_DYNAMIC: Tolerance(0.98, 14.0, 0.35, 0.95, 0.02, 0.05),
    _P.LUT8:         Tolerance(0.98, 14.0, 0.35, 0.95, 0.02, 0.05),
    _P.LUT4:         Tolerance(0.9, 8.0, 0.8, 0.85, 0.03, 0.1),
}


def tolerance_for(precision: Precision, overrides: Mapping[str, Any] | None = None,
                  where: str = "[tolerances]") -> Tolerance:
    """The row for ``precision`` with a profile's overrides applied (checked key by key)."""
    base = TOLERANCES[Precision.parse(precision)]
    if not overrides:
        return base
    return from_table(Tolerance, {**base.to_dict(), **dict(overrides)}, where)


def parse_tolerance(table: Mapping[str, Any], where: str) -> Tolerance:
    """A complete tolerance (e.g. read back from a bundle's plan)."""
    return from_table(Tolerance, table, where)


__all__ = ["ACCURACY_DROP_CEILING", "TOLERANCES", "TOLERANCE_KEYS", "Tolerance", "parse_tolerance",
           "tolerance_for"]
