"""CoreML exporter on the digits CNN at every precision, judged by the emulated runtime."""
from __future__ import annotations

from pathlib import Path

import pytest

from coreml_helpers import export_coreml as export
from coreml_helpers import run_every_precision
from edgeport.errors import ConfigError
from edgeport.exporters import ExportJob, get_exporter
from edgeport.progress import SILENT
from edgeport.targets.profile import load_profile, resolve_plan
from edgeport.validation.inspect import inspect_artifact
from edgeport.validation.metrics import top1_accuracy, top1_agreement
from edgeport.validation.runtimes import get_runtime

@pytest.fixture(scope="module")
def digits_runs(digits, tmp_path_factory):
    ref, runs = run_every_precision(digits, tmp_path_factory, "digits")
    return digits, ref, runs


def ratio(runs, p: str) -> float:
    return runs[p][0].total_bytes() / runs["fp32"][0].total_bytes()


def test_fp16_agrees_with_torch(digits_runs):
    _, ref, runs = digits_runs
    assert top1_agreement(ref, runs["fp16"][2]) >= 0.999
    assert runs["fp16"][0].facts["compute_precision"] == "fp16"
    assert 0.45 < ratio(runs, "fp16") < 0.55


def test_int8_size_and_agreement(digits_runs):
    _, ref, runs = digits_runs
    art, _, got = runs["int8"]
    assert ratio(runs, "int8") <= 0.30
    assert top1_agreement(ref, got) >= 0.99
    # 3 convs + 2 linears: the measured policy found no layer losing enough to be worth bytes
    assert art.facts["weight_tensors_compressed"] == 5
    assert art.facts["compressed_by_op"] == {"constexpr_affine_dequantize": 5}
    policy = art.facts["tensor_policy"]
    assert policy["tensors"] == 5 and policy["kept_float"] == [] and policy["met"]
    assert all(w["layer_sqnr_db"] > 40 for w in policy["most_sensitive_compressed"])
    assert policy["trials"][0]["agreement"] == 1.0 and art.facts["weights"].startswith("int8 symmetric")


def test_measured_policy_is_no_larger_than_compressing_everything(digits, digits_runs, tmp_path):
    _, ref, runs = digits_runs
    every = export(digits, "int8", tmp_path / "all", tensor_policy="all")
    assert every.facts["weight_tensors_compressed"] == 5 and "tensor_policy" not in every.facts
    assert every.facts["weights"].startswith("int8 affine")  # the fixed rule's form, zero points and all
    assert runs["int8"][0].total_bytes() <= every.total_bytes()


def test_a_candidate_missing_the_criteria_gets_a_larger_float_budget(digits, tmp_path):
    """With a bar 4-bit cannot clear (cosine 0.9999), the guard tries each float budget in turn,
    keeps the most error per byte in fp16 / 8 bits first, and ships the best measured candidate."""
    from dataclasses import replace

    plan = resolve_plan(load_profile("ios-coreml"), precision="lut4")
    plan = replace(plan, tolerance=replace(plan.tolerance, cosine_min=0.9999))
    job = ExportJob(digits, digits.module, plan, digits.calibration_data, SILENT, tmp_path / "w")
    art = get_exporter("coreml").export(job, tmp_path / "a")
    policy = art.facts["tensor_policy"]
    trials = policy["trials"]
    assert len(trials) >= 3 and not any(t["ok"] for t in trials) and not policy["met"]
    assert [t["float_budget"] for t in trials] == sorted(t["float_budget"] for t in trials)
    assert trials[-1]["float_tensors"] > trials[0]["float_tensors"]
    chosen = trials[policy["pick"]["trial"]]
    assert chosen["cosine"] == max(t["cosine"] for t in trials) > trials[0]["cosine"]
    assert policy["pick"]["why"].startswith("no candidate met the criteria")
    # the first conv (288 weights, ~17 dB in 4 bits) is kept first, fp16: 8 bits would cost more
    first = policy["kept_float"][0]
    assert first["elements"] == 288 and first["as"] == "fp16" and first["layer_sqnr_db"] < 25
    assert {k["as"] for k in policy["kept_float"]} <= {"fp16", "lut8"}
    assert len(policy["kept_float"]) == chosen["float_tensors"]
    assert first["tensor"] in art.facts["left_float"] and "tensor_policy.kept_float" in art.facts["left_float_why"]
    assert 0 < policy["float_bytes"] <= 0.1 * art.total_bytes()


def test_lut4_size_and_accuracy(digits_runs):
    src, ref, runs = digits_runs
    art, _, got = runs["lut4"]
    assert ratio(runs, "lut4") <= 0.16
    labels = src.eval_data.labels
    assert top1_accuracy(ref, labels) - top1_accuracy(got, labels) <= 0.02
    # within the first float budget (0.1 % of the bytes) nothing fits: all five stay 4-bit
    assert art.facts["tensor_policy"]["met"] and art.facts["tensor_policy"]["kept_float"] == []
    assert art.facts["compressed_by_op"] == {"constexpr_lut_to_dense": 5}


def test_lut4_on_ios18_has_a_palette_per_channel_group_the_emulator_runs(digits, digits_runs, tmp_path):
    _, ref, runs = digits_runs
    art = export(digits, "lut4", tmp_path / "grouped", deployment_target="iOS18")
    assert "per_grouped_channel" in art.facts["weights"]
    # every weight is palettized, the 10-class head too (groups of 2: 16 does not divide 10)
    kept = art.facts["tensor_policy"]["kept_float"]
    assert art.facts["compressed_by_op"] == {"constexpr_lut_to_dense": 5 - len(kept)}
    ops = inspect_artifact("coreml", art.path)
    assert ops.details["opset"] == "CoreML8" and not ops.unsupported
    got = get_runtime("coreml-emulator").load(art.path).predict(digits.eval_data)["logits"]
    assert top1_agreement(ref, got) >= 0.99
    assert art.total_bytes() <= 1.1 * runs["lut4"][0].total_bytes()


def test_lut8_size_and_agreement(digits_runs):
    _, ref, runs = digits_runs
    assert ratio(runs, "lut8") <= 0.31 and top1_agreement(ref, runs["lut8"][2]) >= 0.99


def test_facts_count_what_is_left_uncompressed(digits_runs):
    _, _, runs = digits_runs
    facts = runs["int8"][0].facts
    # with weight_threshold 0 nothing is skipped for size; what stays float are the biases
    # (coremltools compresses weights only), and the facts name them
    assert facts["weight_threshold"] == 0
    assert facts["weight_tensors_left_float"] == len(facts["left_float"]) == 5

    # what the emulated run proves and cannot is the runtime's to say, not the exporter's
    assert "cannot_prove" in runs["int8"][1].facts() and "emulator" not in " ".join(facts)
    assert runs["fp32"][0].facts["weight_tensors_compressed"] == 0


def test_package_holds_only_the_model(digits_runs):
    _, _, runs = digits_runs
    files = runs["fp16"][0].files()
    assert sorted(Path(f).name for f in files) == ["Manifest.json", "model.mlmodel", "weight.bin"]


def test_inspect_lists_ops_and_nothing_unsupported(digits_runs):
    _, _, runs = digits_runs
    report = inspect_artifact("coreml", runs["lut4"][0].path)
    assert {"conv", "linear", "max_pool", "relu", "constexpr_lut_to_dense"} <= set(report.used)
    assert not report.unsupported and not report.blocking
    assert report.details["opset"] == "CoreML6"  # iOS16


def test_pruned_model_is_stored_sparse(digits, digits_runs, tmp_path):
    from edgeport.compression.magnitude import prune_magnitude

    _, _, runs = digits_runs
    pruned, stats = prune_magnitude(digits.module, 0.5)
    art = export(digits, "fp16", tmp_path / "sparse", module=pruned, sparsity=0.5)
    assert art.facts["compressed_by_op"] == {"constexpr_sparse_to_dense": 5}
    # 50 % zeros: fp16 nonzeros + a 1-bit mask, ~0.56 of the dense fp16 weights
    assert art.total_bytes() < 0.65 * runs["fp16"][0].total_bytes()
    sess = get_runtime("coreml-emulator").load(art.path)
    ref = digits.reference(digits.eval_data, module=pruned)["logits"]
    assert top1_agreement(ref, sess.predict(digits.eval_data)["logits"]) >= 0.99


def test_pruned_lut4_on_ios18_combines_sparse_and_palettized(digits, tmp_path):
    from edgeport.compression.magnitude import prune_magnitude

    pruned, _ = prune_magnitude(digits.module, 0.5)
    art = export(digits, "lut4", tmp_path / "joint", module=pruned, sparsity=0.5, deployment_target="iOS18")
    ops = inspect_artifact("coreml", art.path)
    assert {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"} <= set(ops.used)
    assert ops.details["opset"] == "CoreML8"
    sess = get_runtime("coreml-emulator").load(art.path)
    ref = digits.reference(digits.eval_data, module=pruned)["logits"]
    # 50 % pruning (no fine-tuning) + 16 levels per tensor is lossy by itself: 0.94 measured
    assert top1_agreement(ref, sess.predict(digits.eval_data)["logits"]) >= 0.9


def test_refusals(digits, tmp_path):
    from dataclasses import replace

    nothing = replace(digits, module=None)  # no module, no ONNX file (ONNX sources convert: test_onnx_to_coreml)
    with pytest.raises(ConfigError, match="neither a module nor an ONNX file"):
        export(nothing, "fp16", tmp_path / "a")
    with pytest.raises(ConfigError, match="deployment_target must be one of iOS16, iOS17, iOS18; got 'iOS12'"):
        export(digits, "fp16", tmp_path / "b", deployment_target="iOS12")
    with pytest.raises(ConfigError, match="activation_quantization"):
        export(digits, "int8", tmp_path / "c", activation_quantization=True)
    with pytest.raises(ConfigError, match="does not support precision 'bf16'"):
        resolve_plan(load_profile("ios-coreml"), precision="bf16")


def test_run_accepts_a_package_edgeport_did_not_make(digits, tmp_path):
    """Packages from plain coremltools.convert (its default I/O types, a flexible batch) run too."""
    import torch

    from edgeport.exporters._coreml_convert import import_coremltools

    ct = import_coremltools()
    x = torch.from_numpy(digits.example_inputs[0])
    ep = torch.export.export(digits.module.eval(), (x,)).run_decompositions({})
    ml = ct.convert(ep, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    path = tmp_path / "foreign.mlpackage"
    ml.save(str(path))
    sess = get_runtime("coreml-emulator").load(path)
    name = sess.input_specs[0].name
    got = sess.predict(type(digits.eval_data)({name: digits.eval_data.inputs["x"]}))
    ref = digits.reference(digits.eval_data)["logits"]
    assert top1_agreement(ref, next(iter(got.values()))) >= 0.999

    # a flexible batch dimension (traced module): the whole set runs as one real batch
    traced = torch.jit.trace(digits.module.eval(), (x,))
    flex = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(ct.RangeDim(1, 1024, 1), 1, 8, 8))],
                      convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    flex.save(str(tmp_path / "flex.mlpackage"))
    sess = get_runtime("coreml-emulator").load(tmp_path / "flex.mlpackage")
    # a TensorType without dtype gets fp16 I/O from coremltools on iOS16+: float32 feeds are cast
    assert sess.input_specs[0].shape == (-1, 1, 8, 8) and sess.input_specs[0].dtype == "float16"
    got = next(iter(sess.predict(digits.eval_data).values()))
    assert sess.batching["mode"] == "batched (flexible batch dim)"
    assert top1_agreement(ref, got) >= 0.999


def test_conv1d_prelu_and_a_wide_log_softmax_convert_and_stay_finite_in_fp16(tmp_path):
    """coremltools hands per-channel PReLU on [B, C, L] to MIL's rank-4 prelu (conversion fails)
    and writes log_softmax as log(softmax(x)): in fp16 a logit 17 below the top one gives -inf.
    edgeport's converters give the same function on both."""
    import numpy as np
    import torch
    import torch.nn as nn

    from edgeport.data import Dataset
    from edgeport.source import ModelSource

    class Signal(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv1d(2, 6, 3, padding=1)
            self.act = nn.PReLU(6)
            self.head = nn.Linear(6 * 12, 5)

        def forward(self, wave):
            z = self.act(self.conv(wave))
            logits = self.head(z.flatten(1)) * 40.0  # a spread far beyond fp16's exp range
            return logits, torch.log_softmax(logits, dim=1)

    model = Signal().eval()
    with torch.no_grad():
        model.act.weight.copy_(torch.linspace(-0.6, 0.9, 6))
    x = np.random.default_rng(0).standard_normal((16, 2, 12)).astype(np.float32)
    src = ModelSource("signal", model, (x[:1],), output_names=("logits", "log_probs"),
                      eval_data=Dataset({"wave": x}))
    ref = src.reference(src.eval_data)
    assert (ref["logits"].max(1) - ref["logits"].min(1)).max() > 30  # fp16 softmax would underflow
    for precision in ("fp32", "fp16"):
        art = export(src, precision, tmp_path / precision)
        got = get_runtime("coreml-emulator").load(art.path).predict(src.eval_data)
        assert np.isfinite(got["log_probs"]).all()
        tol = 1e-4 if precision == "fp32" else 0.05
        scale = np.abs(ref["log_probs"]).max()
        assert np.abs(got["log_probs"] - ref["log_probs"]).max() <= tol * scale
        assert np.abs(got["logits"] - ref["logits"]).max() <= tol * np.abs(ref["logits"]).max()


def test_edgeport_converters_are_added_when_coremltools_was_imported_first():
    """A user's script (or another library) may import coremltools before edgeport converts: the
    converters edgeport adds (new_ones, prelu, log_softmax) must be registered all the same."""
    import subprocess
    import sys

    code = (
        "import coremltools\n"
        "from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY as R\n"
        "from edgeport.exporters._coreml_convert import import_coremltools\n"
        "import_coremltools()\n"
        "ours = lambda R: sorted(n for n in ('new_ones', 'prelu', 'log_softmax')\n"
        "                        if R.get_func(n).__module__ == 'edgeport.exporters._coreml_torch_ops')\n"
        "print(ours(R))\n"
        # the TensorFlow source path imports coremltools afresh (its TF frontend is decided at
        # import): the new registry is empty of edgeport's converters until they are added again
        "import sys\n"
        "for m in [m for m in sys.modules if m.split('.')[0] == 'coremltools']: del sys.modules[m]\n"
        "import_coremltools()\n"
        "from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY as R2\n"
        "print(R2 is not R, ours(R2))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["['log_softmax', 'new_ones', 'prelu']",
                                                     "True ['log_softmax', 'new_ones', 'prelu']"]


@pytest.mark.real
def test_efficientnet_lite0_lut4_passes_with_bias_correction(effnet, tmp_path):
    """4-bit palettes on a real CNN: the measured policy keeps the most harmful tensors in 8 bits and
    every compressed layer's bias absorbs its mean output shift; judged on the 64 real photo views."""
    from edgeport.pipeline import export as export_model

    (res,) = export_model(effnet, ["ios-coreml"], precision="lut4", out_dir=tmp_path)
    r = res.report
    assert r.passed, r.failed_checks
    assert r.size.ratio <= 0.16
    (out,) = r.parity.outputs
    assert out.cosine >= 0.9 and out.sqnr_db >= 8.0 and r.parity.top1_agreement >= 0.85
    policy = r.precision_facts["tensor_policy"]
    # the convolutions and the classifier are corrected (49 weighted layers, a few kept in fp16)
    assert policy["bias_correction"]["layers"] >= 40
    assert {k["as"] for k in policy["kept_float"]} <= {"fp16", "lut8"}
