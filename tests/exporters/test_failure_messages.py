"""A target that cannot be produced ends with one line a user can act on: the stage, the op when
known, a hint from the table of known failures, and the log that holds everything the converter
said. Real converters, run as a user runs them (a fresh CLI process)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from cli_helpers import ROOT, run_cli
from edgeport.errors import ConversionError
from edgeport.exporters.failures import find_hint, find_op
from edgeport.exporters.hints import KNOWN_FAILURES

MODELS = "tests/data/failing_models.py"


def _error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeport: error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_complex_numbers_name_the_aten_op_the_stage_and_the_hint(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("export", f"{MODELS}:complex_rotation", "--target", "local-onnx", "--precision", "fp32",
                   "-o", str(out))
    log = out / "complex_rotation-local-onnx.log"
    assert _error_line(proc) == (
        "edgeport: error: local-onnx: torch→ONNX failed: no ONNX export for aten::exp on a complex-valued "
        "input (its input comes from view_as_complex) — hint: ONNX, TFLite, CoreML and TF.js have no complex "
        "tensors: carry real and imaginary parts as two real tensors (torch.view_as_real; exp(iθ) as cos θ "
        f"and sin θ; a DFT as a matmul with cos/sin matrices) — full log: {log}")
    # the exporter's whole report is in the log (the line above is all a terminal gets of it)
    text = log.read_text()
    assert "No ONNX function found for <OpOverload(op='aten.exp', overload='default')>" in text
    assert "[edgeport] torch→ONNX (dynamo exporter, opset 18) ..." in text
    assert sorted(p.name for p in out.iterdir()) == [log.name]  # no bundle, no staging leftovers


def test_a_converter_crash_names_the_step_and_the_frame_it_crashed_in(tmp_path):
    """TensorFlow's int8 calibrator segfaults on a GRU kept as a While loop (longer than edgeport
    unrolls); the child process reports its steps to the parent, so the crash is placed in
    SavedModel→TFLite (int8), and faulthandler's stack in the log names the calibrator."""
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(1).standard_normal((8, 520, 4)).astype(np.float32))
    out = tmp_path / "out"
    proc = run_cli("export", f"{MODELS}:long_gru", "--target", "android-tflite", "--precision", "int8",
                   "--data", str(data), "-o", str(out), "-q")
    log = out / "long_gru-android-tflite.log"
    line = _error_line(proc)
    assert line.startswith("edgeport: error: android-tflite: SavedModel→TFLite (int8) failed: the converter "
                           "crashed (SIGSEGV) in tensorflow/lite/python/optimize/calibrator.py ("), line
    assert "hint: TensorFlow's int8 calibrator crashes on some graphs, While loops in particular" in line
    assert "--precision int8-dynamic" in line and line.endswith(f"— full log: {log}")
    text = log.read_text()
    assert "Fatal Python error: Segmentation fault" in text and "ONNX→SavedModel (onnx2tf): " in text
    assert not (out / "long_gru-android-tflite").exists()


def test_a_hang_names_the_step_it_outlived(tmp_path):
    """A converter past the profile's timeout_s is killed; the step it was in is the stage."""
    text = (ROOT / "edgeport" / "targets" / "profiles" / "ios-coreml.toml").read_text()
    profile = tmp_path / "ios-coreml-hasty.toml"
    profile.write_text(text.replace('name = "ios-coreml"', 'name = "ios-coreml-hasty"')
                       .replace("[options]\n", "[options]\ntimeout_s = 1\n"))
    out = tmp_path / "out"
    proc = run_cli("export", f"{MODELS}:tiny_mlp", "--target", str(profile), "-o", str(out), "-q")
    assert _error_line(proc) == (
        "edgeport: error: ios-coreml-hasty: torch→CoreML (FLOAT16, iOS16) failed: the converter did not finish "
        "within 1 s (profile option timeout_s) — hint: coremltools can stall on some graphs (seen here: Conv1d + "
        "PReLU at fp16): try --precision fp32, LeakyReLU instead of PReLU, or a longer timeout_s in a copy of "
        f"the profile — full log: {out / 'tiny_mlp-ios-coreml-hasty.log'}")


# --- the table, on messages the pinned converters really print ----------------------------------

TFLITE_ERF = ('ops with no TFLite builtin kernel (TensorFlow Select ops only): Erf\n\nConverterError: '
              'loc(callsite(fused["Erf:", "model/output/Erf@__inference_<lambda>_754"]))\nerror: failed while '
              "converting: 'main':\nSome ops are not supported by the native TFLite runtime, you can enable TF "
              "kernels fallback using TF Select.\nTF Select ops: Erf\nDetails:\n\ttf.Erf(tensor<1x4xf32>) -> "
              "(tensor<1x4xf32>)")
TFJS_ERFC = "ValueError: Unsupported Ops in the model before optimization\nErfc"
COREML_OP = "torch.export: NotImplementedError: PyTorch convert function for op 'fft_rfftn' not implemented."
ADDN = "tfjs-node: load failed: Error: tf.addN() must have the same dtype, but got int32 and float32"
DATA_DEPENDENT = ("no ONNX export ...\nGuardOnDataDependentSymNode: Could not guard on data-dependent expression "
                  "Eq(u0, 1) (unhinted: Eq(u0, 1)).")
TIMEOUT = "the converter did not finish within 600 s (profile option timeout_s)"


@pytest.mark.parametrize("fmt, precision, stage, text, op, hint", [
    ("tflite", "fp32", "SavedModel→TFLite (fp32)", TFLITE_ERF, "Erf", "exact GELU's building block"),
    ("tfjs", "fp16", "SavedModel→TF.js", TFJS_ERFC, "Erfc", "TF.js has no Erfc kernel"),
    ("tfjs", "fp32", "SavedModel→TF.js", TFJS_ERFC.replace("Erfc", "FFT"), "FFT", "TF.js runs only the ops"),
    ("coreml", "fp16", "torch→CoreML", COREML_OP, "aten::fft_rfftn", "@register_torch_op"),
    ("tfjs", "fp32", "load and run in tfjs-node", ADDN, None, "different dtypes"),
    ("onnx", "int8", "torch→ONNX", DATA_DEPENDENT, None, "torch.where"),
    ("coreml", "fp16", "torch→CoreML (FLOAT16, iOS16)", TIMEOUT, None, "Conv1d + PReLU"),
    ("onnx", "fp32", "onnx: fp32", TIMEOUT, None, "raise it in a copy of the profile"),
    ("tflite", "int8", "load in LiteRT", "Node number 3 (PRELU) failed to prepare (XNNPACK)", "PRELU",
     "nn.PReLU() with a single slope"),
    ("tflite", "int8-dynamic", "SavedModel→TFLite (int8-dynamic)", "the converter crashed (SIGSEGV)", None, None),
])
def test_known_failures_give_their_hint(fmt, precision, stage, text, op, hint):
    assert find_op(text) == op
    found = find_hint(fmt, precision, stage, find_op(text), text)
    assert (found is None) if hint is None else (hint in found), found


def test_every_entry_is_named_once_and_compiles():
    import re

    names = [k.name for k in KNOWN_FAILURES]
    assert len(names) == len(set(names))
    for k in KNOWN_FAILURES:
        re.compile(k.pattern)
        assert k.hint and not k.hint.endswith(".")


def test_a_conversion_error_crosses_the_process_boundary_whole():
    err = ConversionError("tflite", "SavedModel→TFLite (fp32)", TFLITE_ERF)
    back = pickle.loads(pickle.dumps(err))
    assert (back.stage, back.detail, str(back)) == (err.stage, err.detail, str(err))
    assert str(err) == ("SavedModel→TFLite (fp32) failed: ops with no TFLite builtin kernel (TensorFlow Select "
                        "ops only): Erf")
    full = err.annotated(op="Erf", hint="h", log="out/m-android-tflite.log")
    assert str(full) == str(err) + " — hint: h — full log: out/m-android-tflite.log"
