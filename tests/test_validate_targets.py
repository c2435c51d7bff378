"""`edgeport validate` on a bundle of each target: passes as written, fails (exit 1, naming the
file) after one byte of the artifact changes; `edgeport run` refuses a truncated artifact."""
from __future__ import annotations

import shutil

import pytest

from cli_helpers import assert_one_line_error, cli_json, run_cli
from edgeport.pipeline import export

# (target, precision, the artifact file whose byte is changed)
CASES = [
    ("android-tflite", "int8", "model.tflite"),
    ("ios-coreml", "fp16", "model.mlpackage/Data/com.apple.CoreML/weights/weight.bin"),
    ("browser-tfjs", "fp16", "tfjs/group1-shard1of1.bin"),
]


@pytest.fixture(scope="module")
def bundles(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for target, precision, _ in CASES:
        (res,) = export(digits, [target], precision=precision, out_dir=out)
        assert res.report.passed, res.report.failed_checks
        made[target] = res.bundle
    return made


@pytest.mark.parametrize("target, precision, victim", CASES)
def test_validate_passes_then_names_the_changed_file(bundles, target, precision, victim, tmp_path):
    bundle = bundles[target]
    rc, rep = cli_json("validate", str(bundle))
    assert rc == 0, [c for c in rep["checks"] if not c["passed"]]
    assert rep["target"] == target and rep["precision"] == precision
    assert rep["parity"]["top1_agreement"] >= 0.99

    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    path = copy / victim
    assert path.is_file(), sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    rc, rep = cli_json("validate", str(copy))
    assert rc == 1 and rep["passed"] is False
    integrity = next(c for c in rep["checks"] if c["name"] == "integrity")
    assert not integrity["passed"] and victim in integrity["detail"]


def test_run_refuses_a_truncated_tflite(bundles, tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes((bundles["android-tflite"] / "model.tflite").read_bytes()[:4096])
    proc = run_cli("run", str(bad), "--data", str(bundles["android-tflite"] / "golden.npz"))
    assert_one_line_error(proc, "cut.tflite")
    # the bundle's own golden inputs are valid --data for `edgeport run`
    out = tmp_path / "y.npz"
    proc = run_cli("run", str(bundles["android-tflite"] / "model.tflite"), "--data",
                   str(bundles["android-tflite"] / "golden.npz"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    import numpy as np

    with np.load(out) as got, np.load(bundles["android-tflite"] / "golden.npz") as golden:
        agree = (got["logits"].argmax(1) == golden["reference__logits"].argmax(1)).mean()
    assert agree >= 0.99


REPORT_KEYS = {"edgeport_version", "model", "target", "format", "runtime", "precision", "sparsity",
               "passed", "size", "parity", "accuracy", "latency", "ops", "checks"}


@pytest.mark.parametrize("target", [c[0] for c in CASES])
def test_report_json_has_the_contract_keys(bundles, target):
    import json

    rep = json.loads((bundles[target] / "report.json").read_text())
    assert REPORT_KEYS <= set(rep)
    assert {"artifact_bytes", "fp32_bytes", "ratio", "gzip_bytes"} <= set(rep["size"])
    assert {"samples", "top1_agreement", "outputs"} <= set(rep["parity"])
    assert {"name", "max_abs", "mean_abs", "cosine", "sqnr_db", "passed"} <= set(rep["parity"]["outputs"][0])
    assert {"metric", "reference", "artifact", "drop"} <= set(rep["accuracy"])
    assert {"provenance", "runtime", "threads", "p50_ms", "p90_ms", "p99_ms", "runs"} <= set(rep["latency"])
    assert rep["latency"]["provenance"] == ("emulated" if target == "ios-coreml" else "measured")
    assert {"used", "unsupported"} <= set(rep["ops"]) and rep["ops"]["used"]
    assert all({"name", "passed", "detail"} <= set(c) for c in rep["checks"])
    assert rep["size"]["artifact_bytes"] > 0 and 0 < rep["size"]["ratio"] < 1
