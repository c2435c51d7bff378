"""``--task`` / ``ModelSource(task=...)``: a declared task is judged as declared; undeclared, a first
output shaped [N, C] (C >= 2) is judged as a classifier and the report says it assumed so."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_json, run_cli
from edgeport.data import Dataset
from edgeport.errors import ConfigError
from edgeport.pipeline import export
from edgeport.recheck import validate_bundle
from edgeport.source import ModelSource

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from near_tie import NearTie  # noqa: E402



def _source(task: str = "generic") -> ModelSource:
    x = np.random.default_rng(0).standard_normal((128, 8)).astype(np.float32)
    return ModelSource(name="near_tie", module=NearTie().eval(), example_inputs=(x[:1],), task=task,
                       eval_data=Dataset({"x": x}), calibration_data=Dataset({"x": x}))


def test_undeclared_classifier_is_assumed_and_its_flipped_top1_fails(tmp_path):
    (res,) = export(_source(), ["local-onnx"], precision="fp16", out_dir=tmp_path)
    r = res.report.to_dict()
    assert r["task"]["name"] == "classification" and r["task"]["declared"] is False
    assert r["task"]["basis"].startswith("assumed: output 'output' is [N, 2]")
    checks = {c["name"]: c for c in r["checks"]}
    # element-wise the fp16 artifact is excellent; its predictions are not: the check says so
    assert checks["parity"]["passed"] and r["parity"]["outputs"][0]["cosine"] > 0.99999
    assert r["parity"]["top1_agreement"] < 0.9 and not checks["top1_agreement"]["passed"]
    assert not r["passed"]
    # the bundle remembers what was assumed: validate judges the same way
    again = validate_bundle(res.bundle).to_dict()
    assert again["task"] == r["task"] and not again["passed"]


@pytest.mark.parametrize("task", ["regression", "embedding"])
def test_a_declared_non_classifier_has_no_top1_check(task, tmp_path):
    (res,) = export(_source().with_task(task), ["local-onnx"], precision="fp16", out_dir=tmp_path)
    r = res.report.to_dict()
    assert r["task"] == {"name": task, "declared": True, "basis": "declared (--task)", "classifier_output": None}
    assert r["parity"]["top1_agreement"] is None and r["passed"], r["checks"]


def test_cli_task_flag_and_refusal(tmp_path):
    model = f"{DATA / 'near_tie.py'}:near_tie"
    rc, doc = cli_json("export", model, "-t", "local-onnx", "-p", "fp32", "--task", "classification",
                       "-o", str(tmp_path / "a"))
    assert rc == 0 and doc["task"]["declared"] and doc["parity"]["top1_agreement"] == 1.0
    proc = run_cli("export", model, "-t", "local-onnx", "--task", "detection", "-o", str(tmp_path / "b"))
    assert proc.returncode == 2 and "invalid choice: 'detection'" in proc.stderr
    with pytest.raises(ConfigError, match="unknown task 'detection'"):
        _source().with_task("detection")
    assert not (tmp_path / "c").exists()
