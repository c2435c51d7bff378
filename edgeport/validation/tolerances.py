"""The tolerance table: one visible row per precision, overridable per profile.

cosine / SQNR / max-abs are per output, against the source model's outputs on the same inputs.
``max_abs_rel`` is max |artifact - reference| divided by max |reference| (scale-free, so one row
serves logits and embeddings alike). top-1 agreement applies to classifier outputs; accuracy drop
to labelled data (in fractions: 0.01 = one point).
"""
from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError
from ..targets.profile import TOLERANCE_KEYS, Tolerance

TOLERANCES: dict[str, Tolerance] = {
    #                 cosine_min  sqnr_db_min  max_abs_rel_max  top1_agreement_min  accuracy_drop_max
    "fp32":         Tolerance(0.99999, 60.0, 1e-3, 0.999, 0.002),
    "fp16":         Tolerance(0.9999, 35.0, 2e-2, 0.99, 0.005),
    "bf16":         Tolerance(0.999, 25.0, 6e-2, 0.98, 0.01),
    "int8":         Tolerance(0.98, 14.0, 0.35, 0.95, 0.02),
    "int8-dynamic": Tolerance(0.98, 14.0, 0.35, 0.95, 0.02),
    "lut8":         Tolerance(0.98, 14.0, 0.35, 0.95, 0.02),
    "lut4":         Tolerance(0.9, 8.0, 0.8, 0.85, 0.03),
}


def tolerance_for(precision: str, overrides: Mapping[str, float] | None = None) -> Tolerance:
    base = TOLERANCES[precision]
    if not overrides:
        return base
    values = {k: getattr(base, k) for k in TOLERANCE_KEYS}
    for k, v in overrides.items():
        if k not in values:
            raise ConfigError(f"unknown tolerance key {k!r}; known keys: {', '.join(TOLERANCE_KEYS)}")
        values[k] = float(v)
    return Tolerance(**values)
