"""Error statistics between a reference and an artifact's outputs, as values (not verdicts)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ErrorStats:
    """Per-output statistics over all samples. ``cosine`` is the mean of per-sample cosines,
    ``cosine_min`` the worst sample; ``sqnr_db`` is over all elements (inf when identical).

    An output with one value per sample (a regression head, a score) has no per-sample
    direction — its cosine would always be ±1 — so it is compared over the batch: ``cosine`` is
    the cosine between the vectors of all samples' values."""

    name: str
    samples: int
    max_abs: float
    mean_abs: float
    max_abs_rel: float
    cosine: float
    cosine_min: float
    sqnr_db: float
    #: samples whose artifact output holds a NaN or an infinity (every figure above is then void)
    nonfinite_samples: int = 0

    @classmethod
    def from_arrays(cls, name: str, reference: np.ndarray, actual: np.ndarray) -> "ErrorStats":
        ref = np.asarray(reference, dtype=np.float64)
        got = np.asarray(actual, dtype=np.float64).reshape(ref.shape)
        diff = np.abs(ref - got)
        n = ref.shape[0] if ref.ndim else 1
        r2, g2 = ref.reshape(n, -1), got.reshape(n, -1)
        if r2.shape[1] == 1 and n > 1:
            # one value per sample: judged over the batch, centred on the reference's mean (a
            # correlation), so an output stuck at the mean does not look aligned
            mean = r2.mean()
            r2, g2 = (r2 - mean).reshape(1, -1), (g2 - mean).reshape(1, -1)
        dot = (r2 * g2).sum(1)
        norms = np.linalg.norm(r2, axis=1) * np.linalg.norm(g2, axis=1)
        cos = np.where(norms > 0, dot / np.maximum(norms, 1e-300), np.where(np.abs(dot) == 0, 1.0, 0.0))
        noise = float((diff ** 2).sum())
        # signal power: for one value per sample, the reference's variance (its spread is what a
        # regression output carries; its offset is free to match)
        signal = float(((ref - ref.mean()) ** 2).sum()) if ref.size == n and n > 1 else float((ref ** 2).sum())
        sqnr = float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-300) / noise)
        scale = float(np.abs(ref).max()) or 1.0
        nonfinite = int((~np.isfinite(got.reshape(n, -1))).any(1).sum()) if got.size else 0
        with np.errstate(invalid="ignore"):
            return cls(name, int(n), float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0,
                       float(diff.max(initial=0.0)) / scale, float(cos.mean()), float(cos.min()), sqnr,
                       nonfinite)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a figure the artifact's NaN or infinity made void is null."""
        d = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}
        d["sqnr_db"] = None if self.nonfinite_samples else _finite(self.sqnr_db)
        return d


def _finite(x: float) -> float | None:
    """JSON has no infinity: an exact match is reported as 999 dB; NaN (the artifact produced
    NaN) as null — never as a figure that looks good."""
    if np.isnan(x):
        return None
    return 999.0 if np.isinf(x) and x > 0 else round(float(x), 3)


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Share of samples whose arg-max class is the same."""
    ref = np.asarray(reference).reshape(len(reference), -1)
    got = np.asarray(actual).reshape(len(actual), -1)
    return float((ref.argmax(1) == got.argmax(1)).mean())


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    out = np.asarray(logits).reshape(len(logits), -1)
    return float((out.argmax(1) == np.asarray(labels).reshape(-1)).mean())
