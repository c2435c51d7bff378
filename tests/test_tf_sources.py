"""TensorFlow / Keras sources (issue 14): Keras models trained here on sklearn's digits, exported to
every target through each format's own TensorFlow path, and judged against TensorFlow's outputs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before TensorFlow is imported (toolchain notes)

from cli_helpers import assert_one_line_error, run_cli  # noqa: E402

from edgeport.compression.request import CompressionRequest  # noqa: E402
from edgeport.errors import ConfigError, ModelLoadError  # noqa: E402
from edgeport.pipeline import export  # noqa: E402
from edgeport.source_specs import load_source  # noqa: E402

ALL = ["local-onnx", "android-tflite", "ios-coreml", "browser-tfjs"]
#: per precision: worst cosine and top-1 agreement every target must reach on the held-out digits
FLOOR = {"fp32": (0.99999, 1.0), "fp16": (0.9999, 0.99), "int8": (0.98, 0.95)}


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """A CNN on the 8×8 digit images and an Embedding + Dense model on the same digits read as 64
    token ids (pixel intensities 0-16), both trained in seconds; held-out rows as --data files."""
    import keras
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("keras")
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    images = (digits.images[order] / 16.0).astype(np.float32)[..., None]
    tokens = digits.images[order].reshape(-1, 64).astype(np.int32)
    labels = digits.target[order].astype(np.int64)
    train, held = slice(0, 1400), slice(1400, 1656)
    keras.utils.set_random_seed(0)
    cnn = keras.Sequential([keras.Input((8, 8, 1), name="image"), keras.layers.Conv2D(16, 3, activation="relu"),
                            keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10, name="logits")])
    text = keras.Sequential([keras.Input((64,), dtype="int32", name="tokens"), keras.layers.Embedding(17, 4),
                             keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10, name="logits")])
    out = {}
    for name, model, x, epochs in (("cnn", cnn, images, 15), ("text", text, tokens, 8)):
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x[train], labels[train], epochs=epochs, batch_size=32, verbose=0)
        acc = model.evaluate(x[held], labels[held], verbose=0)[1]
        assert acc >= 0.9, (name, acc)  # a real classifier, so agreement and accuracy mean something
        key = model.inputs[0].name
        np.savez(root / f"{name}.npz", **{key: x[held], "labels": labels[held]})
        out[name] = {"model": model, "data": str(root / f"{name}.npz"), "acc": acc}
    cnn.save(root / "cnn.keras")
    text.save(root / "text.h5")  # legacy HDF5, read by Keras 3 like .keras
    cnn.export(str(root / "cnn_saved_model"))  # Keras' own SavedModel export
    out["cnn"]["file"], out["text"]["file"] = str(root / "cnn.keras"), str(root / "text.h5")
    out["saved_model"], out["root"] = str(root / "cnn_saved_model"), root
    return out


def _judge(results, precision):
    got = {}
    for r in results:
        assert r.error is None, f"{r.target}: {r.error}"
        rep = r.report
        assert rep.passed, (r.target, [(c.name, c.detail) for c in rep.failed_checks])
        out = rep.parity.outputs[0]
        cos, agree = FLOOR[precision]
        assert out.cosine >= cos and rep.parity.top1_agreement >= agree, (r.target, out, rep.parity.top1_agreement)
        assert rep.parity.samples == 256 and rep.accuracy is not None
        got[r.target] = (out.cosine, out.max_abs, rep.parity.top1_agreement)
    return got


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", ["cnn", "text"])
def test_keras_models_to_every_target(keras_models, model, precision, tmp_path):
    m = keras_models[model]
    results = export(m["file"], ALL, precision=precision, data=m["data"], out_dir=tmp_path)
    assert [r.target for r in results] == ALL
    got = _judge(results, precision)
    if precision == "fp32":  # same function in every runtime, to float rounding
        assert all(max_abs < 1e-3 for _, max_abs, _ in got.values()), got
    manifest = json.loads((results[0].bundle / "manifest.json").read_text())
    assert manifest["source"]["framework"] == "tensorflow"
    assert manifest["source"]["framework_version"].startswith("2.")
    assert manifest["source"]["keras_version"].startswith("3.")
    facts = {r.target: r.report.to_dict()["precision_facts"] for r in results}
    assert "no ONNX hop" in facts["android-tflite"]["path"]
    assert "TensorFlow 2 frontend" in facts["ios-coreml"]["captured_with"]
    assert facts["local-onnx"]["path"].endswith("tf2onnx")


@pytest.mark.parametrize("model", ["cnn", "text"])
def test_keras_models_int8(keras_models, model, tmp_path):
    m = keras_models[model]
    results = export(m["file"], ["local-onnx", "android-tflite"], precision="int8", data=m["data"], out_dir=tmp_path)
    _judge(results, "int8")
    facts = {r.target: r.report.to_dict()["precision_facts"] for r in results}
    # int8 really stored (the files are too small for the size ratio to show it: QDQ scales weigh more)
    assert facts["local-onnx"]["weight_bytes_8bit_share"] >= 0.8, facts["local-onnx"]
    assert facts["android-tflite"]["weights"].startswith("int8") and "int8" in facts["android-tflite"]["activations"]
    for r in results:
        assert r.report.accuracy.drop <= 0.02, (r.target, r.report.accuracy)


def test_saved_model_folder_through_the_cli(keras_models, tmp_path):
    """The user's path: a fresh process that never loads TensorFlow itself (reading the model, the
    reference run and each conversion happen in child processes)."""
    sm, data = keras_models["saved_model"], keras_models["cnn"]["data"]
    proc = run_cli("export", sm, "--target", "local-onnx", "--target", "android-tflite", "--precision", "fp32", "--data", data,
                   "-o", str(tmp_path), "--json", "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads(proc.stdout)
    assert [r["target"] for r in reports] == ["local-onnx", "android-tflite"]
    for rep in reports:
        assert rep["passed"] and rep["parity"]["top1_agreement"] == 1.0
        assert rep["parity"]["outputs"][0]["cosine"] >= 0.99999
        assert rep["accuracy"]["reference"] >= 0.9
    bundle = tmp_path / "cnn_saved_model-android-tflite"
    assert json.loads((bundle / "manifest.json").read_text())["source"]["framework"] == "tensorflow"


def test_factory_returning_a_keras_model(tmp_path):
    src = load_source("tests/data/tf_factories.py:two_heads")
    assert src.framework == "tensorflow" and src.module is None
    assert src.input_names == ("features",) and src.output_names == ("scores", "value")
    (res,) = export(src, ["local-onnx"], precision="fp32", out_dir=tmp_path)
    assert res.report.passed, res.report.failed_checks
    assert [o.name for o in res.report.parity.outputs] == ["scores", "value"]
    assert min(o.cosine for o in res.report.parity.outputs) >= 0.99999


def test_lambda_layers_and_custom_modules_are_refused(keras_models, tmp_path):
    import keras

    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0, name="double")(x))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match="Lambda layer 'double' holds Python code"):
        load_source(str(tmp_path / "lambda.keras"))
    # from the CLI: one line, exit 2, refused before TensorFlow or Keras reads the file
    assert_one_line_error(run_cli("export", str(tmp_path / "lambda.keras"), "-t", "local-onnx", "-o",
                                  str(tmp_path / "out")), "Lambda layer 'double'")
    assert not (tmp_path / "out").exists()


def test_compression_is_refused_for_a_tensorflow_source(keras_models, tmp_path):
    with pytest.raises(ConfigError, match="do not apply to a TensorFlow source"):
        export(keras_models["cnn"]["file"], ["local-onnx"], compression=CompressionRequest(sparsity=0.5),
               out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
