"""Task metrics per labelled output: the metric functions on hand-computed numbers, the kind of
an output read from shapes and dtypes, the refusals, the checks, and labels in golden.npz."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeport.data import Dataset, load_npz
from edgeport.errors import ModelLoadError
from edgeport.precision import Precision
from edgeport.targets.tolerances import TOLERANCES
from edgeport.validation.golden import read_golden, write_golden
from edgeport.validation.report import Accuracy
from edgeport.validation.task_checks import judge_task
from edgeport.validation.task_kinds import label_kind
from edgeport.validation.task_metrics import RegressionErrors, accuracy, confusion, mean_iou

INT8 = TOLERANCES[Precision.INT8]  # accuracy_drop_max 0.02, regression_mae_increase_max 0.05

# a 2 x 3 label map and a prediction with two pixels wrong
MASK = np.array([[[0, 0, 1], [1, 2, 2]]])
PRED = np.array([[[0, 1, 1], [1, 2, 0]]])


def _one_hot(ids: np.ndarray, classes: int) -> np.ndarray:
    """Logits [N, C, ...] whose arg-max over axis 1 is ``ids``."""
    return np.moveaxis(np.eye(classes, dtype=np.float32)[ids], -1, 1)


def test_mean_iou_by_hand():
    # class 0: 1 pixel shared, union 3 -> 1/3; class 1: 2 of 3 -> 2/3; class 2: 1 of 2 -> 1/2
    counts = confusion(PRED, MASK, 3)
    assert counts.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert math.isclose(mean_iou(counts), (1 / 3 + 2 / 3 + 1 / 2) / 3)
    # a class neither the labels nor the predictions hold does not count
    assert math.isclose(mean_iou(confusion(PRED, MASK, 5)), 0.5)
    assert accuracy(PRED, MASK) == 4 / 6 and mean_iou(confusion(MASK, MASK, 3)) == 1.0


def test_regression_errors_by_hand():
    e = RegressionErrors.of(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 3, 5]))
    assert e.mae == 0.5 and math.isclose(e.rmse, math.sqrt(0.5))
    assert math.isclose(e.label_std, math.sqrt(2.75)) and math.isclose(e.mae_rel, 0.5 / math.sqrt(2.75))
    assert RegressionErrors.of(np.ones(3), np.full(3, 2.0)).to_dict()["mae_rel"] is None  # constant labels


@pytest.mark.parametrize("out_shape, labels, kind, axis", [
    ((10,), np.array([3, 0]), "classification", 1),
    ((1, 10), np.array([[3], [0]]), "classification", 2),            # [N,1,C] logits, [N,1] ids
    ((3, 2, 3), np.zeros((2, 2, 3), np.int64), "segmentation", 1),   # NCHW, [N,H,W]
    ((2, 3, 3), np.zeros((2, 2, 3), np.uint8), "segmentation", 3),   # NHWC, [N,H,W]
    ((), np.array([0.5, 1.0], np.float32), "regression", None),      # [N] value
    ((1,), np.array([0.5, 1.0]), "regression", None),                 # [N,1] value, [N] labels
    ((4,), np.zeros((2, 4), np.float32), "regression", None),         # K values per sample
])
def test_kind_from_shapes_and_dtype(out_shape, labels, kind, axis):
    out = label_kind("y", out_shape, labels)
    assert (out.kind, out.class_axis) == (kind, axis)


@pytest.mark.parametrize("out_shape, labels, needle", [
    ((10,), np.array([3.0, 1.0]), "astype(numpy.int64)"),             # integral floats: cast them
    ((10,), np.array([3.5, 1.0]), "non-integral values (3.5, sample 0)"),
    ((10,), np.array([1, -1]), "negative class id (-1, sample 1)"),
    ((10,), np.array([1, 10]), "class id 10 (sample 1), out of range: output 'y' has 10 classes [0, 10)"),
    ((3, 2, 3), np.full((1, 2, 3), 3), "out of range"),
    ((10,), np.array(["cat", "dog"]), "labels must be numbers"),
    ((10,), np.zeros((2, 3), np.int64), "fits no kind"),
    ((3, 4, 4), np.zeros((2, 4, 5), np.int64), "fits no kind"),
    ((), np.array([1, 2]), "regression targets must be floats"),
    ((1,), np.array([np.nan, 1.0]), "NaN or infinity (sample 0)"),
])
def test_labels_of_the_wrong_kind_are_refused(out_shape, labels, needle):
    with pytest.raises(ModelLoadError, match="labels for output 'y'") as err:
        label_kind("y", out_shape, labels)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_labels_per_output_name():
    data = Dataset({"x": np.zeros((2, 3))}, np.array([1, 0]), output_labels={"value": np.array([0.5, 1.5])})
    joined = data.labels_for(["logits", "value"])
    assert list(joined) == ["logits", "value"] and joined["logits"].tolist() == [1, 0]
    with pytest.raises(ModelLoadError, match="no output 'value'; its outputs: logits, score"):
        data.labels_for(["logits", "score"])
    twice = Dataset({"x": np.zeros((2, 3))}, np.array([1, 0]), output_labels={"logits": np.array([1, 0])})
    with pytest.raises(ModelLoadError, match="both labels and labels__logits"):
        twice.labels_for(["logits"])
    with pytest.raises(ModelLoadError, match="labels__value and inputs disagree"):
        Dataset({"x": np.zeros((2, 3))}, output_labels={"value": np.zeros(3)})
    assert data.take(1).output_labels["value"].tolist() == [0.5]


def test_judge_task_every_kind():
    logits_ref = _one_hot(np.array([0, 1, 2, 1]), 3)
    logits_got = _one_hot(np.array([0, 1, 1, 1]), 3)
    mask_ref, mask_got = _one_hot(MASK, 3), _one_hot(PRED, 3)
    value_ref = np.array([1.0, 2, 3, 4], np.float32)
    reference = {"logits": logits_ref, "mask": np.repeat(mask_ref, 4, 0), "value": value_ref}
    actual = {"logits": logits_got, "mask": np.repeat(mask_got, 4, 0), "value": value_ref + 0.01}
    labels = {"logits": np.array([0, 1, 2, 2]), "mask": np.repeat(MASK, 4, 0),
              "value": np.array([1.0, 1, 3, 5], np.float32)}
    acc, checks = judge_task(reference, actual, labels, INT8)
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["accuracy_drop", "pixel_accuracy_drop:mask", "regression_mae:value"]
    assert not by_name["accuracy_drop"].passed and by_name["accuracy_drop"].detail.startswith("+25.00 pt")
    assert not by_name["pixel_accuracy_drop:mask"].passed and by_name["regression_mae:value"].passed
    d = acc.to_dict()
    assert (d["metric"], d["reference"], d["artifact"], d["drop"], d["samples"]) == ("top1", 0.75, 0.5, 0.25, 4)
    cls, seg, reg = d["outputs"]
    assert cls["agreement"] == 0.75 and cls["classes"] == 3
    assert seg["reference"] == {"pixel_accuracy": 1.0, "miou": 1.0}
    assert seg["artifact"] == {"pixel_accuracy": round(4 / 6, 6), "miou": 0.5} and seg["miou_drop"] == 0.5
    assert seg["pixels"] == 24 and seg["agreement"] == round(4 / 6, 6)
    assert reg["reference"]["mae"] == 0.5 and math.isclose(reg["artifact"]["mae"], 0.505, abs_tol=1e-6)
    assert math.isclose(reg["mae_increase_rel"], 0.005 / math.sqrt(2.75), abs_tol=1e-6)


def test_regression_headline_and_nan_artifact():
    reference, labels = {"value": np.array([1.0, 2, 3, 4])}, {"value": np.array([1.0, 1, 3, 5])}
    acc, (check,) = judge_task(reference, {"value": np.array([1.0, 2, np.nan, 4])}, labels, INT8)
    assert check.name == "regression_mae:value" and not check.passed
    d = json.loads(json.dumps(acc.to_dict(), allow_nan=False))  # NaN is null in report.json, never a figure
    assert d["metric"] == "mae" and d["reference"] == 0.5 and d["artifact"] is None
    worse, _ = judge_task(reference, {"value": np.array([1.0, 2, 3, 3])}, labels, INT8)
    assert worse.drop == 0.25  # for an error metric, the drop is the artifact's increase
    assert Accuracy.of(worse.outputs).to_dict()["drop"] == 0.25


def test_labels_in_golden_round_trip_and_old_bundles(tmp_path):
    x = np.zeros((3, 2), np.float32)
    ref = {"logits": np.eye(3, dtype=np.float32), "value": np.arange(3, dtype=np.float32)}
    write_golden(tmp_path / "g.npz", Dataset({"x": x}, np.array([0, 1, 2]), output_labels={"value": ref["value"]}),
                 ref, None)
    g = read_golden(tmp_path / "g.npz", ["logits", "value"])
    assert {k: v.tolist() for k, v in g.data.labels_for(["logits", "value"]).items()} == {
        "logits": [0, 1, 2], "value": [0.0, 1.0, 2.0]}
    # a bundle from before labels per output: plain labels only, still the first output's
    np.savez(tmp_path / "old.npz", input__x=x, reference__logits=ref["logits"], labels=np.array([2, 1, 0]))
    assert list(read_golden(tmp_path / "old.npz", ["logits"]).data.labels_for(["logits"])) == ["logits"]
    np.savez(tmp_path / "odd.npz", input__x=x, reference__logits=ref["logits"], labels__other=np.zeros(3))
    with pytest.raises(ModelLoadError, match="labels__other, but the model has no such output"):
        read_golden(tmp_path / "odd.npz", ["logits"])


def test_load_npz_reads_labels_per_output(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3), np.float32), labels__value=np.array([0.5, 1.0], ">f8"))
    data = load_npz(tmp_path / "d.npz", ["x"])
    assert data.labels is None and data.output_labels["value"].dtype == np.float64
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 3), np.float32), labels__value=np.array(["a", "b"]))
    with pytest.raises(ModelLoadError, match="'labels__value' is <U1; only numeric arrays"):
        load_npz(tmp_path / "s.npz", ["x"])
