"""The criteria an artifact's outputs are held to, in one place: the parity check and the int8
guard's trials both judge with these functions, so a trial the guard accepts passes parity."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from .metrics import ErrorStats, top1_agreement

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance


def output_problems(stats: ErrorStats, tol: "Tolerance") -> list[str]:
    """Why one output misses the tolerance (empty: it meets it)."""
    problems = []
    if stats.nonfinite_samples:
        problems.append(f"NaN or infinite values in {stats.nonfinite_samples} of {stats.samples} samples")
    if not stats.cosine >= tol.cosine_min:
        problems.append(f"cosine {stats.cosine:.6f} (min {tol.cosine_min})")
    if not stats.sqnr_db >= tol.sqnr_db_min:
        problems.append(f"sqnr {stats.sqnr_db:.1f} dB (min {tol.sqnr_db_min})")
    if not stats.max_abs_rel <= tol.max_abs_rel_max:
        problems.append(f"max_abs_rel {stats.max_abs_rel:.4g} (max {tol.max_abs_rel_max})")
    return problems


def agreement_problem(agreement: float | None, tol: "Tolerance") -> str | None:
    if agreement is None or agreement >= tol.top1_agreement_min:
        return None
    return f"top-1 agreement {agreement:.4f} (min {tol.top1_agreement_min})"


def judge_outputs(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], tol: "Tolerance",
                  classifier: str | None) -> tuple[list[ErrorStats], float | None, list[str]]:
    """Statistics of every output, the classifier output's top-1 agreement, and every problem."""
    stats, problems = [], []
    for name, ref in reference.items():
        st = ErrorStats.from_arrays(name, ref, actual[name])
        stats.append(st)
        problems += [f"{name}: {p}" for p in output_problems(st, tol)]
    agreement = top1_agreement(reference[classifier], actual[classifier]) if classifier else None
    why = agreement_problem(agreement, tol)
    if why:
        problems.append(f"{classifier}: {why}")
    return stats, agreement, problems
