"""Task metrics against labels, as values: accuracy, pixel accuracy, mean IoU, regression errors.

Predictions come in already reduced (class ids, or regression values) and shaped like the labels
(see :meth:`edgeport.validation.task_kinds.LabelledOutput.predictions`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Share of predicted class ids equal to the labels (per sample, or per pixel)."""
    return float((np.asarray(predicted) == np.asarray(labels)).mean())


def confusion(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """``[classes, classes]`` counts over every element: rows are labels, columns predictions."""
    idx = np.asarray(labels, dtype=np.int64).ravel() * classes + np.asarray(predicted, dtype=np.int64).ravel()
    return np.bincount(idx, minlength=classes * classes).reshape(classes, classes)


def mean_iou(counts: np.ndarray) -> float:
    """Mean over classes of intersection / union, over the classes present in the labels or the
    predictions (a class neither holds would be 0/0)."""
    inter = np.diag(counts).astype(np.float64)
    union = counts.sum(0) + counts.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else 1.0


@dataclass(frozen=True)
class RegressionErrors:
    """Mean absolute and root-mean-square errors, and both divided by the labels' standard
    deviation (None when the labels are constant)."""

    mae: float
    rmse: float
    label_std: float

    @property
    def mae_rel(self) -> float | None:
        return self.mae / self.label_std if self.label_std > 0 else None

    @property
    def rmse_rel(self) -> float | None:
        return self.rmse / self.label_std if self.label_std > 0 else None

    @classmethod
    def of(cls, predicted: np.ndarray, labels: np.ndarray) -> "RegressionErrors":
        diff = np.asarray(predicted, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
        return cls(float(np.abs(diff).mean()), math.sqrt(float((diff ** 2).mean())),
                   float(np.asarray(labels, dtype=np.float64).std()))

    def to_dict(self) -> dict[str, float | None]:
        return {"mae": self.mae, "rmse": self.rmse, "mae_rel": self.mae_rel, "rmse_rel": self.rmse_rel}
