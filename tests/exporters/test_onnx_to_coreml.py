"""ONNX sources to ios-coreml (issue 14): onnx2torch, then the torch CoreML path, judged in the
emulator against the ONNX source's onnxruntime outputs."""
from __future__ import annotations

import numpy as np

from edgeport.errors import ConversionError
from edgeport.exporters.torch_to_onnx import torch_to_onnx
from edgeport.pipeline import export


def _sample_onnx(sample, path, n=128):
    onnx_path = torch_to_onnx(sample.module, sample.example_inputs, sample.input_names, sample.output_names, path)
    data = path.with_suffix(".npz")
    d = sample.eval_data.take(n)
    np.savez(data, **{k: v for k, v in d.inputs.items()}, labels=d.labels)
    return str(onnx_path), str(data)


def _facts(result):
    return result.report.to_dict()["precision_facts"]


def _exported(sample, path, precision):
    """The sample's ONNX file exported to ios-coreml: a passing report."""
    onnx_path, data = _sample_onnx(sample, path)
    (res,) = export(onnx_path, ["ios-coreml"], precision=precision, data=data, out_dir=path.parent / "out")
    assert res.error is None, res.error
    assert res.report.passed, res.report.failed_checks
    return res, res.report


def test_digits_cnn_onnx_to_coreml_fp16(digits, tmp_path):
    res, rep = _exported(digits, tmp_path / "digits.onnx", "fp16")
    assert rep.parity.top1_agreement >= 0.99 and rep.parity.outputs[0].cosine >= 0.9999
    assert rep.accuracy.reference >= 0.95 and rep.accuracy.drop <= 0.005
    facts = _facts(res)
    assert facts["captured_with"].startswith("onnx2torch, then ")
    assert any("allowzero" in n for n in facts["onnx_to_torch"])  # dynamo's reshapes, read exactly


def test_text_transformer_onnx_to_coreml_fp32(text_transformer, tmp_path):
    res, rep = _exported(text_transformer, tmp_path / "text.onnx", "fp32")
    assert rep.parity.top1_agreement == 1.0 and rep.parity.outputs[0].cosine >= 0.99999
    assert any("opset 18 to 17" in n for n in _facts(res)["onnx_to_torch"])  # ReduceMean-18 has no converter


def _handmade(path, op="Relu"):
    """A two-output MLP written with onnx.helper (not by torch): Gemm -> op -> Gemm, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (6, 16)), ("b1", (16,)), ("w2", (16, 3)), ("b2", (3,)))]
    nodes = [helper.make_node("Gemm", ["features", "w1", "b1"], ["h"]), helper.make_node(op, ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3]),
                               helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_handmade_onnx_with_two_outputs(tmp_path):
    path = _handmade(tmp_path / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((64, 6)).astype(np.float32)
    np.savez(tmp_path / "x.npz", features=x)
    (res,) = export(path, ["ios-coreml"], precision="fp32", data=str(tmp_path / "x.npz"), out_dir=tmp_path / "out")
    assert res.error is None, res.error
    assert res.report.passed, res.report.failed_checks
    assert [o.name for o in res.report.parity.outputs] == ["scores", "probs"]
    assert min(o.cosine for o in res.report.parity.outputs) >= 0.99999


def test_an_op_onnx2torch_lacks_is_a_named_conversion_error(tmp_path):
    path = _handmade(tmp_path / "hardmax.onnx", op="Hardmax")
    (res,) = export(path, ["ios-coreml"], precision="fp32", out_dir=tmp_path / "out")
    assert res.bundle is None and isinstance(res.error, ConversionError)
    assert res.error.stage == "ONNX→torch (onnx2torch)" and "Hardmax" in str(res.error)


def test_the_torchvision_stand_in_is_gone_after_import():
    import importlib.util
    import sys

    from edgeport.exporters._onnx_to_torch import import_onnx2torch

    import_onnx2torch()
    assert "onnx2torch" in sys.modules
    if importlib.util.find_spec("torchvision") is None:  # other libraries probe for it
        assert "torchvision" not in sys.modules
