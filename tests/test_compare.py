"""`edgeport compare`: artifacts made by edgeport and by hand, run in their runtimes on the same
inputs and judged pair by pair with the tolerance table — numbers, layouts, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, cli_json, run_cli

# the same two-output model as the torch one below, written in TensorFlow and converted by
# TensorFlow's own TFLiteConverter: NCHW input, its 4-D output channels-last, other output names
_TF_TWIN = """
import sys
import numpy as np
import tensorflow as tf

w = dict(np.load(sys.argv[1]))
W, b = tf.constant(w["conv.weight"].transpose(2, 3, 1, 0)), tf.constant(w["conv.bias"])
L, lb = tf.constant(w["fc.weight"].T), tf.constant(w["fc.bias"])

class Twin(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 1, 8, 8], tf.float32, name="x")])
    def serve(self, x):
        f = tf.nn.relu(tf.nn.conv2d(tf.transpose(x, [0, 2, 3, 1]), W, 1, "SAME") + b)
        return {"feat_nhwc": f, "head": tf.matmul(tf.reduce_mean(f, [1, 2]), L) + lb}

m = Twin()
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m)
open(sys.argv[2], "wb").write(conv.convert())
"""


def _two_heads(seed: int):
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            f = torch.relu(self.conv(x))
            return f, self.fc(f.mean((2, 3)))

    torch.manual_seed(seed)
    return TwoHeads().eval()


def _onnx_by_hand(model, path) -> None:
    import torch

    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["x"],
                      output_names=["features", "scores"], dynamo=True, external_data=False, verbose=False)


@pytest.fixture(scope="module")
def digits_artifacts(digits, tmp_path_factory):
    """sample:digits_cnn for local-onnx at fp32 and int8, and for android-tflite, ios-coreml and
    browser-tfjs at fp32 (the ONNX file and the SavedModel made once)."""
    import edgeport

    root = tmp_path_factory.mktemp("compare")
    made = {}
    with edgeport.conversion_cache(root / "cache"):
        for target, precision, entry in (("local-onnx", "fp32", "model.onnx"), ("local-onnx", "int8", "model.onnx"),
                                         ("android-tflite", "fp32", "model.tflite"),
                                         ("ios-coreml", "fp32", "model.mlpackage"), ("browser-tfjs", "fp32", "tfjs")):
            (res,) = edgeport.export(digits, [target], precision=precision, out_dir=root / precision)
            assert res.report is not None and res.report.passed, res.error or res.report.failed_checks
            made[f"{target}-{precision}"] = res.bundle / entry
    made["golden"] = made["local-onnx-fp32"].parent / "golden.npz"
    data = root / "digits.npz"
    np.savez(data, x=digits.eval_data.inputs["x"])
    made["data"] = data
    return {k: str(v) for k, v in made.items()}


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """A two-output model exported by torch.onnx (NCHW), its TensorFlow twin converted by
    TensorFlow (NHWC feature map, other names), and the same torch model with other weights."""
    root = tmp_path_factory.mktemp("handmade")
    model = _two_heads(0)
    _onnx_by_hand(model, root / "two.onnx")
    _onnx_by_hand(_two_heads(1), root / "other.onnx")
    np.savez(root / "weights.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
    proc = subprocess.run([sys.executable, "-c", _TF_TWIN, str(root / "weights.npz"), str(root / "two.tflite")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.savez(root / "x.npz", x=np.random.default_rng(0).standard_normal((40, 1, 8, 8)).astype(np.float32))
    return {k: str(root / f) for k, f in (("onnx", "two.onnx"), ("other", "other.onnx"), ("tflite", "two.tflite"),
                                          ("data", "x.npz"))}


def _pair(doc: dict, candidate: str) -> dict:
    return next(p for p in doc["pairs"] if p["candidate"] == candidate)


def test_fp32_onnx_and_fp32_tflite_agree_within_fp32(digits_artifacts):
    a = digits_artifacts
    rc, doc = cli_json("compare", a["local-onnx-fp32"], a["android-tflite-fp32"], "--data", a["data"], "-q")
    assert rc == 0, doc
    assert doc["passed"] is True and doc["tolerance"] == "fp32" and doc["samples"] == 360
    assert doc["reference"]["kind"] == "onnx" and doc["reference"]["runtime"] == "onnxruntime"
    assert doc["candidates"][0]["kind"] == "tflite" and doc["candidates"][0]["runtime"] == "litert"
    (out,) = _pair(doc, a["android-tflite-fp32"])["outputs"]
    assert out["reference_output"] == out["output"] == "logits" and out["matched_by"] == "name"
    assert out["transposed"] is None and out["passed"] is True
    assert out["cosine"] > 0.99999 and out["cosine_min"] > 0.9999
    assert out["sqnr_db"] >= 60 and out["max_abs_rel"] <= 1e-3
    assert out["top1_agreement"] >= 0.999


def test_one_model_in_all_four_formats_agrees_within_fp32(digits_artifacts):
    a = digits_artifacts
    others = [a[f"{t}-fp32"] for t in ("android-tflite", "ios-coreml", "browser-tfjs")]
    rc, doc = cli_json("compare", a["local-onnx-fp32"], *others, "--data", a["data"], "-q")
    assert rc == 0, doc
    assert [(c["kind"], c["runtime"]) for c in doc["candidates"]] == [
        ("tflite", "litert"), ("coreml", "coreml-emulator"), ("tfjs", "tfjs-node")]
    for pair in doc["pairs"]:
        (out,) = pair["outputs"]
        assert out["cosine"] > 0.99999 and out["sqnr_db"] >= 60 and out["top1_agreement"] >= 0.999, pair


def test_int8_is_beyond_fp32_tolerance_but_within_int8s(digits_artifacts, tmp_path):
    a = digits_artifacts
    junit = tmp_path / "compare.xml"
    rc, doc = cli_json("compare", a["local-onnx-fp32"], a["android-tflite-fp32"], a["local-onnx-int8"],
                       "--data", a["data"], "--junit", str(junit), "-q")
    assert rc == 1 and doc["passed"] is False
    assert _pair(doc, a["android-tflite-fp32"])["passed"] is True
    bad = _pair(doc, a["local-onnx-int8"])
    (out,) = bad["outputs"]
    assert bad["passed"] is False and out["passed"] is False
    assert 0.98 < out["cosine"] < 0.99999 and 14 <= out["sqnr_db"] < 60
    assert out["top1_agreement"] >= 0.95
    assert any(p.startswith("logits: cosine") for p in bad["problems"])
    # JUnit: one suite per pair; the pair and its output checks as cases, the failing ones named
    suites = {s.get("name"): s for s in ET.parse(junit).getroot().iter("testsuite")}
    assert set(suites) == {f"{a['android-tflite-fp32']} vs {a['local-onnx-fp32']}",
                           f"{a['local-onnx-int8']} vs {a['local-onnx-fp32']}"}
    int8 = {c.get("name"): c for c in suites[f"{a['local-onnx-int8']} vs {a['local-onnx-fp32']}"].iter("testcase")}
    assert set(int8) == {"pair", "parity:logits", "top1_agreement:logits"}
    assert int8["pair"].find("failure") is not None and int8["parity:logits"].find("failure") is not None
    assert int8["top1_agreement:logits"].find("failure") is None
    assert "cosine" in int8["parity:logits"].find("failure").get("message")

    # the same pair judged with int8's row is within it
    rc, doc = cli_json("compare", a["local-onnx-fp32"], a["local-onnx-int8"], "--data", a["data"],
                       "--tolerance", "int8", "-q")
    assert rc == 0 and doc["tolerance"] == "int8" and doc["limits"]["cosine_min"] == 0.98
    # the text table names the pair, the output and why
    proc = run_cli("compare", a["local-onnx-fp32"], a["local-onnx-int8"], "--data", a["data"], "-q")
    assert proc.returncode == 1
    assert f"{a['local-onnx-int8']} (onnx, onnxruntime) vs {a['local-onnx-fp32']}: FAIL" in proc.stdout
    assert "logits" in proc.stdout and "FAIL: cosine" in proc.stdout
    assert "0 of 1 pair(s) within fp32 tolerance" in proc.stdout


def test_reference_outputs_from_a_bundles_golden_npz(digits_artifacts):
    """--reference golden.npz: the source model's outputs stored at export; its inputs are the data."""
    a = digits_artifacts
    rc, doc = cli_json("compare", a["local-onnx-fp32"], a["android-tflite-fp32"], "--reference", a["golden"],
                       "--data", a["golden"], "-q")
    assert rc == 0, doc
    assert doc["reference"] == {"path": a["golden"], "kind": "npz", "runtime": None, "outputs": {"logits": [10]}}
    assert [p["candidate"] for p in doc["pairs"]] == [a["local-onnx-fp32"], a["android-tflite-fp32"]]
    for pair in doc["pairs"]:
        (out,) = pair["outputs"]
        assert out["samples"] == 360 and out["cosine"] > 0.99999 and out["top1_agreement"] >= 0.999


def test_a_4d_output_is_matched_across_nhwc_and_nchw(handmade):
    h = handmade
    rc, doc = cli_json("compare", h["onnx"], h["tflite"], "--data", h["data"], "-q")
    assert rc == 0, doc
    assert doc["candidates"][0]["outputs"] == {"feat_nhwc": [8, 8, 4], "head": [3]}
    feat, head = doc["pairs"][0]["outputs"]
    assert (feat["reference_output"], feat["output"]) == ("features", "feat_nhwc")
    assert feat["matched_by"] == "shape and order"
    assert feat["transposed"] == "candidate" and "channels-last" in feat["layout"]
    assert (head["reference_output"], head["output"], head["transposed"]) == ("scores", "head", None)
    for out in (feat, head):
        assert out["cosine"] > 0.99999 and out["sqnr_db"] >= 60 and out["max_abs_rel"] <= 1e-3
    assert feat["top1_agreement"] is None and head["top1_agreement"] == 1.0
    # the other way round: the reference is the channels-last one, and the result says so
    rc, doc = cli_json("compare", h["tflite"], h["onnx"], "--data", h["data"], "-q")
    assert rc == 0
    feat = doc["pairs"][0]["outputs"][0]
    assert (feat["reference_output"], feat["output"], feat["transposed"]) == ("feat_nhwc", "features", "reference")
    # --reference names the reference among (or beside) the artifacts
    rc, doc = cli_json("compare", h["tflite"], "--reference", h["onnx"], "--data", h["data"], "-q")
    assert rc == 0 and doc["reference"]["path"] == h["onnx"]
    assert doc["pairs"][0]["outputs"][0]["transposed"] == "candidate"
    proc = run_cli("compare", h["onnx"], h["tflite"], "--data", h["data"], "-q")
    assert proc.returncode == 0 and "transposed (candidate)" in proc.stdout
    assert "features: candidate's [8, 8, 4] is channels-last: transposed to the channels-first [4, 8, 8]" in proc.stdout


def test_a_different_model_fails_naming_the_pair_and_the_outputs(handmade):
    h = handmade
    rc, doc = cli_json("compare", h["onnx"], h["tflite"], h["other"], "--data", h["data"], "-q")
    assert rc == 1
    assert _pair(doc, h["tflite"])["passed"] is True
    bad = _pair(doc, h["other"])
    assert bad["passed"] is False and all(o["matched_by"] == "name" for o in bad["outputs"])
    assert {p.partition(":")[0] for p in bad["problems"]} == {"features", "scores"}
    assert all(o["cosine"] < 0.99 for o in bad["outputs"])


@pytest.mark.parametrize("case, needle", [
    ("one artifact", "at least two things to compare"),
    ("missing file", "no such artifact"),
    ("wrong npz key", "has no array named 'x'"),
    ("wrong shape", "per-sample shape"),
    ("unknown tolerance", "unknown tolerance 'fp64'"),
    ("short reference", "has 3 samples, the data 40"),
    ("npz as an artifact", "only --reference may be stored outputs"),
    ("no time", "--timeout must be > 0"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(handmade, tmp_path, case, needle):
    h = handmade
    np.savez(tmp_path / "wrong_key.npz", image=np.zeros((4, 1, 8, 8), np.float32))
    np.savez(tmp_path / "wrong_shape.npz", x=np.zeros((4, 1, 9, 9), np.float32))
    np.savez(tmp_path / "short.npz", features=np.zeros((3, 4, 8, 8), np.float32))
    args = {"one artifact": [h["onnx"], "--data", h["data"]],
            "missing file": [h["onnx"], str(tmp_path / "nope.tflite"), "--data", h["data"]],
            "wrong npz key": [h["onnx"], h["tflite"], "--data", str(tmp_path / "wrong_key.npz")],
            "wrong shape": [h["onnx"], h["tflite"], "--data", str(tmp_path / "wrong_shape.npz")],
            "unknown tolerance": [h["onnx"], h["tflite"], "--data", h["data"], "--tolerance", "fp64"],
            "short reference": [h["onnx"], "--reference", str(tmp_path / "short.npz"), "--data", h["data"]],
            "npz as an artifact": [h["onnx"], str(tmp_path / "short.npz"), "--data", h["data"]],
            "no time": [h["onnx"], h["tflite"], "--data", h["data"], "--timeout", "0"],
            }[case]
    junit = tmp_path / "out" / "c.xml"
    proc = run_cli("compare", *args, "--junit", str(junit), "-q")
    assert_one_line_error(proc, needle)
    assert proc.stdout == "" and not junit.exists()


def test_matching_by_name_then_by_shape_in_order():
    from edgeport.validation.comparison import BY_NAME, BY_SHAPE, align, match_outputs

    z = np.zeros
    ref = {"a": z((2, 3)), "b": z((2, 4, 5, 6)), "c": z((2, 3)), "d": z((2, 7))}
    cand = {"c": z((2, 3)), "x": z((2, 3)), "y": z((2, 5, 6, 4)), "extra": z((2, 9))}
    matched, missing, extra = match_outputs(ref, cand)
    assert matched == [("a", "x", BY_SHAPE), ("b", "y", BY_SHAPE), ("c", "c", BY_NAME)]
    assert missing == ["d"] and extra == ["extra"]
    # a cube cannot tell channels-first from channels-last: compared as given, and said so
    _, _, layout, transposed = align(z((2, 4, 4, 4)), z((2, 4, 4, 4)))
    assert transposed is None and "cannot tell" in layout
    assert align(z((2, 4, 5, 6)), z((2, 4, 6, 5))) is None


def test_compare_is_the_public_function():
    import edgeport
    from edgeport.crosscheck import compare

    assert edgeport.compare is compare and "compare" in edgeport.__all__
    out = json.dumps(compare.__doc__)
    assert "reference" in out
