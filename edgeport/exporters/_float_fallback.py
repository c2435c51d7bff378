"""Search for the smallest float prefix that keeps an int8 model close to its float original.

Quantization error concentrates in a network's first, high-resolution layers (few channels, wide
activation ranges). When full int8 drifts, keeping the first *k* weighted layers float usually
recovers the accuracy at a small cost in size and speed. The search is format-blind: the caller
supplies ``build(k)`` returning the candidate's outputs on the calibration feeds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

PREFIX_STEPS = (2, 4, 8, 12, 16)
#: a step must remove at least this share of the remaining output error (1 - cosine) to be kept
DIMINISHING = 2 / 3


@dataclass
class FallbackResult:
    float_layers: int
    met: bool
    trials: list[dict[str, Any]] = field(default_factory=list)


def score(out: np.ndarray, reference: np.ndarray, classify: bool, cosine_min: float,
          agreement_min: float, float_layers: int) -> dict[str, Any]:
    """Mean cosine (and top-1 agreement for classifiers) of ``out`` against ``reference``."""
    a = out.reshape(len(out), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    trial: dict[str, Any] = {"float_layers": float_layers, "cosine": round(float(cos.mean()), 5)}
    ok = trial["cosine"] >= cosine_min
    if classify:
        trial["agreement"] = round(float((a.argmax(1) == b.argmax(1)).mean()), 4)
        ok = ok and trial["agreement"] >= agreement_min
    trial["ok"] = bool(ok)
    return trial


def search_float_prefix(first: dict[str, Any], weighted_layers: int,
                        build: Callable[[int], dict[str, Any]], budget_s: float = 60.0) -> FallbackResult:
    """Try float prefixes of 2, 4, 8... weighted layers after ``first`` (the all-int8 score) missed.

    Stops when a candidate meets the targets, a step stops paying, half the network would be
    float, or ``budget_s`` runs out; returns the last candidate that paid (0 = keep all-int8).
    """
    t0 = time.perf_counter()
    trials, best = [first], first
    if first["ok"]:
        return FallbackResult(0, True, trials)
    for k in PREFIX_STEPS:
        if k > weighted_layers // 2 or time.perf_counter() - t0 > budget_s:
            break
        trial = build(k)
        trials.append(trial)
        if trial["ok"]:
            best = trial
            break
        if (1 - trial["cosine"]) > DIMINISHING * (1 - best["cosine"]):
            break
        best = trial
    return FallbackResult(best["float_layers"], bool(best["ok"]), trials)
