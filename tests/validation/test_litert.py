"""LiteRT runtimes on .tflite files made by edgeport and by others: names, dtypes, quantized I/O,
int64 feeds, corrupt files, and which kernels produced which figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import RuntimeLoadError
from edgeport.exporters import get_exporter
from edgeport.exporters.base import ExportJob
from edgeport.progress import SILENT
from edgeport.targets.profile import load_profile, resolve_plan, with_options
from edgeport.validation.runtimes import get_runtime, runtime_for_path


@pytest.fixture(scope="module")
def digits_files(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("litert")
    out = {}
    for prec, io in (("fp32", "float"), ("int8", "int8")):
        plan = with_options(resolve_plan(load_profile("android-tflite"), precision=prec), int8_io=io)
        job = ExportJob(source=digits, module=digits.module, plan=plan, calibration=digits.calibration_data,
                        progress=SILENT, workdir=root / prec / "w")
        out[prec] = get_exporter("tflite").export(job, root / prec).path
    return out


def test_xnnpack_and_reference_kernels_agree_and_say_which_is_which(digits, digits_files):
    fast = get_runtime("litert").load(digits_files["fp32"], threads=2)
    ref = get_runtime("litert-reference").load(digits_files["fp32"], threads=1)
    assert fast.runtime_name == "litert" and ref.runtime_name == "litert-reference"
    assert "XNNPACK" in fast.where() and "2 thread" in fast.where()
    assert "reference kernels" in ref.where() and "no XNNPACK" in ref.where()
    data = digits.eval_data.take(64)
    a, b = fast.predict(data)["logits"], ref.predict(data)["logits"]
    assert np.abs(a - b).max() < 1e-4
    torch_out = digits.reference(data)["logits"]
    assert np.abs(a - torch_out).max() < 1e-4
    ta = fast.time(data.sample(0), warmup=5, runs=50)
    tb = ref.time(data.sample(0), warmup=5, runs=50)
    assert ta.runtime == "litert" and tb.runtime == "litert-reference" and ta.load_ms > 0
    assert len(ta.times_ms) == 50 and np.median(tb.times_ms) > 0


def test_int8_io_model_takes_float_and_returns_float(digits, digits_files):
    sess = get_runtime("litert").load(digits_files["int8"])
    assert sess.input_specs[0].dtype == "float32"  # quantized by the session
    data = digits.eval_data.take(100)
    out = sess.predict(data)["logits"]
    assert out.dtype == np.float32
    ref = digits.reference(data)["logits"]
    assert (out.argmax(-1) == ref.argmax(-1)).mean() >= 0.99


def _strip_signatures(src: Path, dst: Path) -> Path:
    """A .tflite with no SignatureDef, like files from older converters."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    model.signatureDefs = None
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return dst


def test_file_without_signature_runs_by_tensor_names(digits, digits_files, tmp_path):
    path = _strip_signatures(digits_files["int8"], tmp_path / "nosig.tflite")
    sess = get_runtime("litert").load(path)
    assert len(sess.input_specs) == 1 and len(sess.output_names) == 1
    data = digits.eval_data.take(50)
    # a single input is fed whatever the array is called
    out = sess.predict(data)[sess.output_names[0]]
    same = get_runtime("litert").load(digits_files["int8"]).predict(data)["logits"]
    np.testing.assert_array_equal(out, same)


def test_foreign_int32_model_accepts_int64_feeds(tmp_path):
    """A model built with TensorFlow directly (not by edgeport) that wants int32 ids."""
    import tensorflow as tf

    table = tf.constant(np.arange(40, dtype=np.float32).reshape(10, 4))

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.int32, name="ids")])
        def serve(self, ids):
            return {"vectors": tf.gather(table, ids) * 2.0}

    m = M()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m)
    path = tmp_path / "foreign.tflite"
    path.write_bytes(conv.convert())
    assert runtime_for_path(path) == "litert"
    sess = get_runtime("litert").load(path)
    assert sess.input_specs[0].dtype == "int32"
    out = sess.run({sess.input_specs[0].name: np.array([[1, 2, 9]], dtype=np.int64)})
    np.testing.assert_allclose(out[sess.output_names[0]][0], np.arange(40).reshape(10, 4)[[1, 2, 9]] * 2.0)
    with pytest.raises(RuntimeLoadError, match="outside int32"):
        sess.run({sess.input_specs[0].name: np.array([[1, 2, 2**40]], dtype=np.int64)})


@pytest.mark.parametrize("runtime", ["litert", "litert-reference"])
def test_truncated_or_missing_file_is_one_line_error(digits_files, tmp_path, runtime):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(digits_files["fp32"].read_bytes()[:1000])
    with pytest.raises(RuntimeLoadError) as err:
        get_runtime(runtime).load(bad)
    assert "\n" not in str(err.value) and "bad.tflite" in str(err.value)
    with pytest.raises(RuntimeLoadError, match="no such"):
        get_runtime(runtime).load(tmp_path / "missing.tflite")


def test_inspect_lists_ops_without_a_plan(digits_files):
    from edgeport.validation.inspect import inspect_artifact

    rep = inspect_artifact("tflite", digits_files["int8"])
    assert {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D"} <= set(rep.used)
    assert not rep.unsupported and "nnapi" not in rep.details
    assert rep.details["op_counts"]["CONV_2D"] == 3
