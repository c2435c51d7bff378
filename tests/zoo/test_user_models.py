"""Models that look like users' models, through the CLI as a user runs it: the cases that used to
fail silently, falsely or loudly, each with its figures asserted."""
from __future__ import annotations

import pytest

from cli_helpers import cli_json

ZOO = "tests/zoo/models.py"


def _export(tmp_path, model: str, target: str, precision: str):
    rc, rep = cli_json("export", f"{ZOO}:{model}", "--target", target, "--precision", precision,
                       "-o", str(tmp_path / "out"))
    assert isinstance(rep, dict) and "error" not in rep, rep
    return rc, rep


@pytest.mark.parametrize("target", ["android-tflite", "browser-tfjs"])
def test_gru_on_square_digit_rows_is_not_read_transposed(tmp_path, target):
    """[B, 8 steps, 8 features]: both axes 8, so a transposed read showed no shape error — only
    agreement 0.19 on TFLite; TF.js failed outright (AddN with a control input)."""
    rc, rep = _export(tmp_path, "gru_digits", target, "fp32")
    assert rc == 0, [c for c in rep["checks"] if not c["passed"]]
    assert rep["parity"]["top1_agreement"] == 1.0
    assert rep["parity"]["outputs"][0]["sqnr_db"] > 60
    assert rep["io"]["inputs"][0]["artifact_shape"] == rep["io"]["inputs"][0]["shape"] == [8, 8]


def test_mlp_with_exact_gelu_runs_on_tflite_builtins(tmp_path):
    rc, rep = _export(tmp_path, "mlp_cancer", "android-tflite", "fp32")
    assert rc == 0, [c for c in rep["checks"] if not c["passed"]]
    assert "GELU" in rep["ops"]["used"] and rep["parity"]["outputs"][0]["sqnr_db"] > 60


def test_two_input_model_calibrates_each_input_with_its_own_arrays(tmp_path):
    """Static int8 used to feed one input's arrays to the other (RESHAPE 6 != 64)."""
    rc, rep = _export(tmp_path, "two_input_heads", "android-tflite", "int8")
    assert rc in (0, 1)
    parity = next(c for c in rep["checks"] if c["name"] == "parity")
    assert parity["passed"], parity
    outs = {o["name"]: o for o in rep["parity"]["outputs"]}
    assert len(outs) == 2 and min(o["cosine"] for o in outs.values()) > 0.98
    assert rep["parity"]["top1_agreement"] >= 0.95 and len(rep["io"]["inputs"]) == 2


def test_int8_facts_match_the_bytes_for_a_recurrent_model(tmp_path):
    """onnxruntime's static int8 leaves GRU weights float: the report must not say "int8"."""
    rc, rep = _export(tmp_path, "gru_digits", "local-onnx", "int8")
    facts = rep["precision_facts"]
    assert rep["size"]["ratio"] > 0.9 and facts["weight_bytes_8bit_share"] < 0.1
    assert facts["weights"].startswith("mostly float") and "GRU" in facts["weights"]
    assert "fp16" in facts["hint"]
