"""The contract as a user meets it: the CLI on the local-onnx target, exit codes, bundles."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, cli_json, run_cli


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rc, rep = cli_json("export", "sample:digits_cnn", "--target", "local-onnx", "--precision", "int8",
                       "-o", str(out))
    return rc, rep, out / "digits_cnn-local-onnx"


def test_targets_lists_the_four_profiles():
    proc = run_cli("targets", "--json")
    assert proc.returncode == 0
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ["local-onnx", "android-tflite", "ios-coreml", "browser-tfjs"]
    assert "bf16" in rows["local-onnx"]["precisions"] and "bf16" not in rows["ios-coreml"]["precisions"]
    assert rows["ios-coreml"]["default_precision"] == "fp16"


def test_int8_export_meets_the_bar(int8_bundle):
    rc, rep, bundle = int8_bundle
    assert rc == 0, rep["checks"]
    assert rep["passed"] is True and rep["target"] == "local-onnx" and rep["runtime"] == "onnxruntime"
    assert rep["size"]["ratio"] <= 0.30
    assert rep["size"]["artifact_bytes"] == (bundle / "model.onnx").stat().st_size
    assert rep["parity"]["samples"] == 360
    assert rep["parity"]["top1_agreement"] >= 0.99
    assert rep["accuracy"]["drop"] <= 0.01 and rep["accuracy"]["reference"] >= 0.95
    assert rep["latency"]["provenance"] == "measured" and rep["latency"]["p50_ms"] > 0
    assert rep["latency"]["runs"] == 100
    assert {"used", "unsupported"} <= set(rep["ops"]) and "QuantizeLinear" in rep["ops"]["used"]
    names = {p.name for p in bundle.iterdir()}
    assert names == {"manifest.json", "report.json", "report.html", "golden.npz", "model.onnx"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {"report.json", "report.html", "golden.npz", "model.onnx"}
    assert manifest["plan"]["precision"] == "int8" and manifest["source"]["digest"].startswith("sha256:")
    with np.load(bundle / "golden.npz") as z:
        assert z["input__x"].shape == (360, 1, 8, 8) and z["reference__logits"].shape == (360, 10)


def test_validate_passes_then_names_a_changed_byte(int8_bundle, tmp_path):
    _, _, bundle = int8_bundle
    proc = run_cli("validate", str(bundle), "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    junit = tmp_path / "checks.xml"
    rc, rep = cli_json("validate", str(copy), "--junit", str(junit))
    assert rc == 1
    integrity = next(c for c in rep["checks"] if c["name"] == "integrity")
    assert not integrity["passed"] and "model.onnx" in integrity["detail"]
    # the same verdict as JUnit XML for a CI system: one case per check, the failure named
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {c["name"] for c in rep["checks"]}
    failed = [c["name"] for c in rep["checks"] if not c["passed"]]
    assert suite.get("failures") == str(len(failed)) and cases["integrity"].find("failure") is not None
    assert "model.onnx" in cases["integrity"].find("failure").get("message")


def test_run_any_onnx(int8_bundle, tmp_path, digits):
    _, _, bundle = int8_bundle
    data = tmp_path / "x.npz"
    np.savez(data, x=digits.eval_data.inputs["x"][:20])
    out = tmp_path / "y.npz"
    proc = run_cli("run", str(bundle / "model.onnx"), "--data", str(data), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as z:
        logits = z["logits"]
    ref = digits.reference(digits.eval_data.take(20))["logits"]
    assert logits.shape == (20, 10)
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("args, needle", [
    (["export", "sample:digits_cnn", "--target", "andriod-tflite"], "unknown target 'andriod-tflite'"),
    (["export", "sample:digits_cnn", "--target", "ios-coreml", "--precision", "bf16"], "supported: fp32"),
    (["export", "tests/data/factories.py:does_not_exist", "--target", "local-onnx"], "no factory named"),
    (["export", "sample:digits_cnn", "--target", "local-onnx", "--sparsity", "1.5"], "sparsity"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(args, needle, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(*args, "-o", str(out))
    assert_one_line_error(proc, needle)
    assert not out.exists() or not any(out.iterdir())


def test_truncated_onnx_is_refused(tmp_path, int8_bundle):
    _, _, bundle = int8_bundle
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes((bundle / "model.onnx").read_bytes()[:2000])
    out = tmp_path / "out"
    assert_one_line_error(run_cli("export", str(bad), "--target", "local-onnx", "-o", str(out)), "trunc.onnx")
    assert not out.exists() or not any(out.iterdir())
    assert_one_line_error(run_cli("run", str(bad), "--data", str(bundle / "golden.npz")), "trunc.onnx")


def test_wrong_data_shape_is_refused(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 1, 9, 9), np.float32))
    out = tmp_path / "out"
    proc = run_cli("export", "sample:digits_cnn", "--target", "local-onnx", "--data", str(data), "-o", str(out))
    assert_one_line_error(proc, "per-sample shape")
    assert not out.exists() or not any(out.iterdir())


def test_failed_budget_is_exit_1_with_a_bundle(tmp_path):
    profile = tmp_path / "tiny-budget.toml"
    text = (Path(__file__).resolve().parents[1] / "edgeport/targets/profiles/local-onnx.toml").read_text()
    text = text.replace('name = "local-onnx"', 'name = "tiny-budget"')
    profile.write_text(text + "\n[budgets]\nmax_artifact_bytes = 1000\n")
    rc, rep = cli_json("export", "sample:digits_cnn", "--target", str(profile), "-o", str(tmp_path / "o"))
    assert rc == 1 and rep["passed"] is False
    budget = next(c for c in rep["checks"] if c["name"] == "size_budget")
    assert not budget["passed"] and "max 1000" in budget["detail"]
    assert (tmp_path / "o" / "digits_cnn-tiny-budget" / "report.json").is_file()
