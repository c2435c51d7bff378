"""The task checks: every labelled output's metrics for the source model and the artifact, each
judged against the plan's tolerance.

Check names: ``accuracy_drop`` for the first labelled output when it is a classifier (the name
the contract always had), else ``accuracy_drop:<output>``, ``pixel_accuracy_drop:<output>``,
``regression_mae:<output>``; ``labels:<output>`` when a bundle's labels no longer fit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..errors import ModelLoadError
from .report import Accuracy, Check, OutputTask
from .task_kinds import CLASSIFICATION, REGRESSION, SEGMENTATION, LabelledOutput, label_kind
from .task_metrics import RegressionErrors, accuracy, confusion, mean_iou

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

#: a figure this close to its limit passes (float noise of the subtraction)
_SLACK = 1e-12


def judge_task(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray],
               labels: Mapping[str, np.ndarray], tol: "Tolerance") -> tuple[Accuracy | None, list[Check]]:
    """Metrics and a check per labelled output (``labels`` keyed by output name, in output order);
    ``reference`` holds the source model's outputs, ``actual`` the artifact's in the same layout."""
    results: list[OutputTask] = []
    checks: list[Check] = []
    for name, lab in labels.items():
        try:
            out = label_kind(name, reference[name].shape[1:], lab)
        except ModelLoadError as exc:  # checked at export; only a rewritten bundle gets here
            checks.append(Check(f"labels:{name}", False, str(exc)))
            continue
        judge = _regression if out.kind == REGRESSION else _classes
        result, detail = judge(out, reference[name], actual[name], lab, tol, not results)
        results.append(result)
        checks.append(Check(result.check, result.passed, detail))
    return (Accuracy.of(tuple(results)) if results else None), checks


def _classes(out: LabelledOutput, ref: np.ndarray, got: np.ndarray, labels: np.ndarray, tol: "Tolerance",
             headline: bool) -> tuple[OutputTask, str]:
    y = out.shaped(labels, ref)
    ref_pred, got_pred = out.predictions(ref), out.predictions(got)
    limit = tol.accuracy_drop_max
    if out.kind == CLASSIFICATION:
        figures = [{"top1": accuracy(p, y)} for p in (ref_pred, got_pred)]
        metric, facts = "top1", {"classes": out.classes}
        name = "accuracy_drop" if headline else f"accuracy_drop:{out.name}"
    else:
        assert out.kind == SEGMENTATION and out.classes is not None
        figures = [{"pixel_accuracy": accuracy(p, y), "miou": mean_iou(confusion(p, y, out.classes))}
                   for p in (ref_pred, got_pred)]
        metric, name = "pixel_accuracy", f"pixel_accuracy_drop:{out.name}"
        facts = {"classes": out.classes, "pixels": int(y.size),
                 "miou_drop": figures[0]["miou"] - figures[1]["miou"]}
    r, a = figures[0][metric], figures[1][metric]
    result = OutputTask(out.name, out.kind, metric, len(ref), figures[0], figures[1], name,
                        r - a <= limit + _SLACK, agreement=accuracy(got_pred, ref_pred), facts=facts)
    detail = f"{(r - a) * 100:+.2f} pt ({r:.4f} -> {a:.4f}; max {limit * 100:.2f} pt)"
    if out.kind == SEGMENTATION:
        detail += f"; mIoU {figures[0]['miou']:.4f} -> {figures[1]['miou']:.4f}"
    return result, detail


def _regression(out: LabelledOutput, ref: np.ndarray, got: np.ndarray, labels: np.ndarray, tol: "Tolerance",
                headline: bool) -> tuple[OutputTask, str]:
    y = out.shaped(labels, ref)
    e_ref, e_got = RegressionErrors.of(out.predictions(ref), y), RegressionErrors.of(out.predictions(got), y)
    increase = e_got.mae - e_ref.mae
    # the limit is a fraction of the labels' spread; constant labels have none, so it is absolute
    scale = e_ref.label_std if e_ref.label_std > 0 else 1.0
    limit = tol.regression_mae_increase_max
    result = OutputTask(out.name, REGRESSION, "mae", len(ref), e_ref.to_dict(), e_got.to_dict(),
                        f"regression_mae:{out.name}", bool(increase <= limit * scale + _SLACK),
                        facts={"label_std": e_ref.label_std,
                               "mae_increase_rel": increase / e_ref.label_std if e_ref.label_std > 0 else None})
    basis = (f"{increase / scale * 100:+.2f} % of the labels' std {e_ref.label_std:.4g}; max {limit * 100:.2f} %"
             if e_ref.label_std > 0 else f"{increase:+.4g}, labels constant; max {limit:g}")
    return result, f"MAE {e_ref.mae:.4g} -> {e_got.mae:.4g} ({basis})"
