"""Error statistics as values, and a parity failure that fails the run."""
from __future__ import annotations

import math

import numpy as np

from edgeport.pipeline import export
from edgeport.validation.golden import read_golden
from edgeport.validation.judge import evaluate
from edgeport.validation.metrics import ErrorStats, top1_accuracy, top1_agreement


def test_error_stats_known_values():
    ref = np.array([[3.0, 4.0], [1.0, 0.0]])
    got = np.array([[3.0, 4.0], [0.0, 1.0]])
    st = ErrorStats.from_arrays("y", ref, got)
    assert st.max_abs == 1.0 and st.mean_abs == 0.5 and st.max_abs_rel == 0.25
    assert st.cosine == 0.5 and st.cosine_min == 0.0  # (1 + 0) / 2
    assert math.isclose(st.sqnr_db, 10 * math.log10(26 / 2))
    exact = ErrorStats.from_arrays("y", ref, ref)
    assert exact.sqnr_db == math.inf and exact.to_dict()["sqnr_db"] == 999.0


def test_an_artifact_output_with_infinities_fails_by_name_and_stays_json():
    """-inf in a log-probability output (fp16 underflow) voids every figure: null in JSON, and the
    parity problem says how many samples hold it."""
    import json

    from edgeport.targets.tolerances import TOLERANCES
    from edgeport.validation.verdict import output_problems

    ref = np.array([[-0.1, -2.5, -20.0], [-0.2, -1.9, -25.0], [-0.05, -3.0, -30.0]])
    got = ref.copy()
    got[1, 2] = -np.inf
    st = ErrorStats.from_arrays("log_probs", ref, got)
    assert st.nonfinite_samples == 1
    d = st.to_dict()
    assert d["max_abs"] is None and d["sqnr_db"] is None and d["nonfinite_samples"] == 1
    json.dumps(d, allow_nan=False)
    problems = output_problems(st, TOLERANCES["fp16"])
    assert problems[0] == "NaN or infinite values in 1 of 3 samples"
    assert output_problems(ErrorStats.from_arrays("log_probs", ref, ref), TOLERANCES["fp16"]) == []


def test_agreement_and_accuracy():
    a = np.array([[0, 1], [1, 0], [0, 1]])
    b = np.array([[0, 1], [0, 1], [0, 1]])
    assert top1_agreement(a, b) == 2 / 3
    assert top1_accuracy(a, np.array([1, 0, 0])) == 2 / 3


def test_divergence_fails_the_checks(digits, tmp_path):
    (res,) = export(digits, ["local-onnx"], precision="fp16", out_dir=tmp_path)
    golden = read_golden(res.bundle / "golden.npz", ["logits"])
    import json

    manifest = json.loads((res.bundle / "manifest.json").read_text())
    from edgeport.targets.profile import Plan

    from edgeport.formats import Artifact
    from edgeport.precision import Precision
    from edgeport.validation.golden import Golden
    from edgeport.validation.judge import Subject

    plan = Plan.from_dict(manifest["plan"])
    shifted = {"logits": golden.reference["logits"][::-1].copy()}  # references of other samples
    artifact = Artifact("onnx", res.bundle, "model.onnx", Precision.FP16, ("x",), ("logits",), fp32_bytes=1)
    r = evaluate(artifact, plan, Golden(golden.data, shifted, None),
                 Subject("digits_cnn", "classification", "logits", version="t"))
    failed = {c.name for c in r.failed_checks}
    assert not r.passed and {"parity", "top1_agreement"} <= failed
    out = r.parity.outputs[0]
    assert out.passed is False and out.cosine < 0.9


def test_slow_runtimes_get_fewer_timing_runs():
    from edgeport.targets.profile import load_profile, resolve_plan
    from edgeport.validation.judge import TIMING_BUDGET_S, _timing_runs

    plan = resolve_plan(load_profile("browser-tfjs"))  # warm-up 5, runs 50
    assert _timing_runs(plan, 0.001) == (5, 50)
    warmup, runs = _timing_runs(plan, 1.2)  # TF.js cpu backend on EfficientNet: 1.2 s a run
    assert runs == int(TIMING_BUDGET_S / 1.2) and warmup == 1
    assert _timing_runs(plan, 60.0) == (1, 5)  # never fewer than 5 runs
