"""The int8 guard: the smallest float prefix that keeps an int8 model within the parity check.

Quantization error concentrates in a network's first, high-resolution layers (few channels, wide
activation ranges). When full int8 drifts, keeping the first *k* weighted layers float usually
recovers the accuracy at a small cost in size and speed. Trials are judged on calibration inputs
(never the evaluation data) with :mod:`edgeport.validation.verdict` — the very criteria of the
parity check (cosine, SQNR, max-abs relative, top-1 agreement), on every output. The search is
format-blind: the caller supplies ``build(k)`` returning the candidate's outputs.

Whatever stopped the search, the candidate shipped is chosen among *every* measured one
(:func:`pick`): the cheapest that meets the criteria, else the best measured, saying so — never
simply the last one tried, nor the one before a step that "did not pay enough".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..validation.verdict import judge_outputs

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

#: float-prefix sizes tried, in order. 6 sits between 4 and 8 because the step from 4 to 8 overshot
#: on EfficientNet-Lite0 in onnxruntime: 6 float layers already met every criterion on the
#: calibration inputs (agreement 0.953) while 8 ran at 0.75x the fp32 latency instead of 0.67x
PREFIX_STEPS = (2, 4, 6, 8, 12, 16)
#: a step must remove at least this share of the remaining output error (1 - cosine) to be kept
DIMINISHING = 2 / 3
#: calibration samples the guard compares on (evenly spread over the calibration set)
GUARD_SAMPLES = 64

Outputs = Mapping[str, np.ndarray]


@dataclass
class GuardResult:
    float_layers: int
    met: bool
    trials: list[dict[str, Any]] = field(default_factory=list)
    #: index in ``trials`` of the candidate chosen, and why it was
    chosen: int = 0
    why: str = ""


def guard_indices(n: int) -> np.ndarray:
    """Indices of up to :data:`GUARD_SAMPLES` calibration samples, evenly spread over ``n``."""
    return np.unique(np.linspace(0, max(n - 1, 0), min(GUARD_SAMPLES, n)).round().astype(int))


def score(outputs: Outputs, reference: Outputs, tol: "Tolerance", classifier: str | None,
          float_layers: int) -> dict[str, Any]:
    """One trial as data: worst cosine / SQNR / max-abs over the outputs, agreement, verdict."""
    stats, agreement, problems = judge_outputs(reference, outputs, tol, classifier)
    trial: dict[str, Any] = {"float_layers": float_layers,
                             "cosine": round(min(s.cosine for s in stats), 6),
                             "sqnr_db": round(min(s.sqnr_db for s in stats), 2) if stats else None,
                             "max_abs_rel": round(max(s.max_abs_rel for s in stats), 5)}
    if agreement is not None:
        trial["agreement"] = round(agreement, 4)
    trial["ok"] = not problems
    if problems:
        trial["misses"] = problems
    return trial


def quality(trial: Mapping[str, Any]) -> tuple[Any, ...]:
    """How good a measured candidate is (higher is better): meeting every criterion, then fewer
    criteria missed, then the classifier output's top-1 agreement, then the worst cosine and SQNR."""
    sqnr = trial.get("sqnr_db")
    return (bool(trial.get("ok")), -len(trial.get("misses", ())), trial.get("agreement", 0.0),
            trial.get("cosine", -1.0), sqnr if sqnr is not None else float("-inf"))


def pick(trials: list[dict[str, Any]], cost: Callable[[int], float] | None = None) -> tuple[int, str]:
    """Index of the candidate to ship among ``trials`` and why: of those meeting the criteria, the
    cheapest (``cost(i)``: float layers by default; ties go to the better measured), else the best
    measured one (:func:`quality`) — the guard never ships a worse candidate it has measured."""
    if not trials:
        raise ValueError("no candidate was measured")
    costs = [cost(i) if cost is not None else trials[i].get("float_layers", 0) for i in range(len(trials))]
    met = [i for i, t in enumerate(trials) if t.get("ok")]
    if met:
        best = max(met, key=lambda i: (-costs[i], quality(trials[i])))
        return best, "the cheapest candidate meeting every criterion"
    best = max(range(len(trials)), key=lambda i: (quality(trials[i]), -costs[i]))
    return best, ("no candidate met the criteria: the best measured one ships (fewest criteria missed, "
                  "then top-1 agreement, then cosine)")


def search_float_prefix(first: dict[str, Any], weighted_layers: int,
                        build: Callable[[int], dict[str, Any]]) -> GuardResult:
    """Try float prefixes of :data:`PREFIX_STEPS` weighted layers after ``first`` (the all-int8 trial) missed.

    Stops when a candidate meets the criteria, a step stops paying (removes less than
    :data:`DIMINISHING` of the best error so far) or half the network would be float; then
    :func:`pick` chooses among every trial measured. No clock bounds it: the candidates tried
    depend on the model only, never on how busy the machine is.
    """
    trials, best_cosine = [first], first["cosine"]
    if first["ok"]:
        return GuardResult(0, True, trials, 0, "all-int8 meets every criterion")
    for k in PREFIX_STEPS:
        if k > weighted_layers // 2:
            break
        trial = build(k)
        trials.append(trial)
        if trial["ok"] or (1 - trial["cosine"]) > DIMINISHING * (1 - best_cosine):
            break
        best_cosine = max(best_cosine, trial["cosine"])
    chosen, why = pick(trials)
    return GuardResult(trials[chosen]["float_layers"], bool(trials[chosen]["ok"]), trials, chosen, why)
