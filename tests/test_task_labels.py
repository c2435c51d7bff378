"""Labels per output as a user meets them: refused in one line before any work, and judged per
output on the local-onnx target — figures equal to what torch and numpy compute directly, and
the same again when the bundle is re-validated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, cli_json, run_cli
from edgeport import cli
from edgeport.pipeline import export
from edgeport.recheck import validate_bundle
from edgeport.validation.task_metrics import confusion, mean_iou

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
import task_models as tm  # noqa: E402

HEADS = f"{DATA / 'task_models.py'}:heads"
SEGMENTER = f"{DATA / 'task_models.py'}:segmenter"
EVAL = slice(tm.TRAIN, tm.TRAIN + 200)


def _heads_data(path: Path, **labels: np.ndarray) -> Path:
    x, _, _ = tm.digits()
    np.savez(path, image=x[EVAL], **labels)
    return path


def _export_in_process(capsys, model: str, data: Path, out: Path) -> subprocess.CompletedProcess:
    """``edgeport export`` through the CLI's own entry point, in this process (no start-up cost)."""
    rc = cli.main(["export", model, "--target", "local-onnx", "--precision", "fp32", "--data", str(data),
                   "-o", str(out)])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["edgeport"], rc, captured.out, captured.err)


_, Y, INK = tm.digits()
N = EVAL.stop - EVAL.start


@pytest.mark.parametrize("labels, needle", [
    ({"labels__logits": Y[EVAL].astype(np.float32)}, "float class ids"),
    ({"labels__logits": Y[EVAL] + 0.5}, "non-integral values"),
    ({"labels__logits": -Y[EVAL]}, "negative class id"),
    ({"labels__nope": Y[EVAL]}, "no output 'nope'; its outputs: logits, ink"),
    ({"labels__logits": Y[EVAL].astype(str)}, "only numeric arrays"),
    ({"labels__ink": np.zeros((N, 3), np.float32)}, "fits no kind"),
    ({"labels__ink": np.zeros(N, np.int64)}, "regression targets must be floats"),
    ({"labels": Y[EVAL], "labels__logits": Y[EVAL]}, "keep one"),
    ({"labels__logits": Y[EVAL][:10]}, "disagree on the number of samples"),
], ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_bad_labels_are_one_line_exit_2_and_nothing_written(labels, needle, tmp_path, capsys):
    out = tmp_path / "out"
    proc = _export_in_process(capsys, HEADS, _heads_data(tmp_path / "d.npz", **labels), out)
    assert_one_line_error(proc, needle)
    assert not out.exists() or not any(out.iterdir())


def test_bad_mask_labels_in_a_fresh_process(tmp_path):
    x = tm.noisy_digits(8)
    np.savez(tmp_path / "d.npz", x=x, labels=np.full((8, 8, 8), 3))  # 3 classes: ids 0..2
    out = tmp_path / "out"
    proc = run_cli("export", SEGMENTER, "--target", "local-onnx", "--data", str(tmp_path / "d.npz"), "-o", str(out))
    assert_one_line_error(proc, "class id 3 (sample 0), out of range: output 'mask' has 3 classes [0, 3)")
    assert not out.exists() or not any(out.iterdir())


def test_class_and_regression_heads_end_to_end(tmp_path):
    data = _heads_data(tmp_path / "d.npz", labels__logits=Y[EVAL], labels__ink=INK[EVAL])
    rc, rep = cli_json("export", HEADS, "--target", "local-onnx", "--precision", "fp16", "--data", str(data),
                       "-o", str(tmp_path / "out"))
    assert rc == 0, rep
    x, _, _ = tm.digits()
    with torch.no_grad():
        logits, ink = (t.numpy() for t in tm.heads().module(torch.from_numpy(x[EVAL])))
    top1 = float((logits.argmax(1) == Y[EVAL]).mean())
    mae = float(np.abs(ink.astype(np.float64) - INK[EVAL]).mean())
    (report,) = rep if isinstance(rep, list) else [rep]
    acc = report["accuracy"]
    assert (acc["metric"], acc["reference"], acc["samples"]) == ("top1", round(top1, 6), N) and top1 > 0.85
    cls, reg = acc["outputs"]
    assert (cls["name"], cls["kind"], cls["check"], cls["classes"]) == ("logits", "classification", "accuracy_drop", 10)
    assert abs(cls["artifact"]["top1"] - top1) <= 0.01 and cls["agreement"] >= 0.99
    assert (reg["name"], reg["kind"], reg["check"]) == ("ink", "regression", "regression_mae:ink")
    assert abs(reg["reference"]["mae"] - mae) < 1e-6 and mae < 0.5 * reg["label_std"]  # it learned something
    assert abs(reg["artifact"]["mae"] - mae) < 1e-3 and reg["passed"]
    checks = {c["name"]: c["passed"] for c in report["checks"]}
    assert checks["accuracy_drop"] and checks["regression_mae:ink"] and report["parity"]["top1_agreement"] >= 0.99
    # re-validation reads the labels per output back from golden.npz and judges them again
    again = validate_bundle(tmp_path / "out" / "heads-local-onnx").to_dict()
    assert again["passed"] and again["accuracy"]["outputs"][1]["reference"] == reg["reference"]
    assert [c["name"] for c in again["checks"] if ":ink" in c["name"]] == ["regression_mae:ink"]


def test_labels_from_a_model_source_factory(tmp_path):
    (res,) = export(tm.heads_labelled(), ["local-onnx"], precision="fp32", out_dir=tmp_path)
    acc = res.report.to_dict()["accuracy"]
    assert [(o["name"], o["kind"], o["passed"]) for o in acc["outputs"]] == [
        ("logits", "classification", True), ("ink", "regression", True)]
    # the factory declared no task: its first output, [N, 10], is assumed to be a classifier's
    # (top-1 agreement checked) and the report says it assumed so
    assert res.report.parity.top1_agreement == 1.0
    assert res.report.task["name"] == "classification" and not res.report.task["declared"]


def test_segmentation_end_to_end(tmp_path):
    x = tm.noisy_digits(96)
    mask = tm.pixel_classes(tm.digits()[0][:96])
    np.savez(tmp_path / "d.npz", x=x, labels=mask)  # plain labels: the first (only) output's
    (res,) = export(SEGMENTER, ["local-onnx"], precision="fp16", data=tmp_path / "d.npz", out_dir=tmp_path)
    with torch.no_grad():
        pred = tm.segmenter().module(torch.from_numpy(x)).numpy().argmax(1)
    pixel_acc, miou = float((pred == mask).mean()), mean_iou(confusion(pred, mask, 3))
    d = res.report.to_dict()
    (seg,) = d["accuracy"]["outputs"]
    assert (seg["kind"], seg["check"], seg["classes"], seg["pixels"]) == (
        "segmentation", "pixel_accuracy_drop:mask", 3, 96 * 64)
    assert seg["reference"] == {"pixel_accuracy": round(pixel_acc, 6), "miou": round(miou, 6)}
    assert 0.8 < pixel_acc < 0.95 and 0.6 < miou < 0.85  # an imperfect but real segmentation
    assert seg["agreement"] > 0.99 and abs(seg["artifact"]["miou"] - miou) < 0.01
    assert d["accuracy"]["metric"] == "pixel_accuracy" and d["parity"]["top1_agreement"] is None
    assert d["passed"], [c for c in d["checks"] if not c["passed"]]
