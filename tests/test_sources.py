"""Model specs: file factories, package factories, .onnx and .pt2 sources, user data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeport.errors import ModelLoadError
from edgeport.pipeline import export
from edgeport.source_data import prepare_source
from edgeport.source_specs import load_source


def test_file_factory_with_two_outputs(tmp_path):
    src = load_source("tests/data/factories.py:two_head")
    assert src.output_names == ("output_0", "output_1") and src.input_specs[0].shape == (1, 12)
    (res,) = export(src, ["local-onnx"], precision="fp16", out_dir=tmp_path)
    r = res.report
    assert r.passed, r.failed_checks
    # no data given: seeded random inputs, said so in the report
    assert r.parity.samples == 32 and "random" in r.parity.golden_inputs
    assert [o.name for o in r.parity.outputs] == ["output_0", "output_1"]
    assert r.accuracy is None


def test_package_factory_and_failing_factory():
    src = load_source("edgeport.sample_models.digits_cnn:load")
    assert src.name == "digits_cnn"
    with pytest.raises(ModelLoadError, match="weights missing"):
        load_source("tests/data/factories.py:broken")
    with pytest.raises(ModelLoadError, match="cannot import module"):
        load_source("no_such_package_xyz:make")


def test_onnx_and_pt2_sources(digits, tmp_path):
    from edgeport.exporters.torch_to_onnx import torch_to_onnx

    onnx_path = torch_to_onnx(digits.module, digits.example_inputs, digits.input_names,
                              digits.output_names, tmp_path / "digits.onnx")
    data = tmp_path / "d.npz"
    np.savez(data, x=digits.eval_data.inputs["x"][:100], labels=digits.eval_data.labels[:100])
    (res,) = export(str(onnx_path), ["local-onnx"], precision="int8", data=str(data), out_dir=tmp_path / "o")
    r = res.report
    assert r.passed and r.parity.samples == 100 and r.accuracy.reference >= 0.95

    ep = torch.export.export(digits.module, (torch.from_numpy(digits.example_inputs[0]),))
    torch.export.save(ep, str(tmp_path / "digits.pt2"))
    src = prepare_source(str(tmp_path / "digits.pt2"), str(data))
    got = src.reference(src.eval_data)["output"]
    np.testing.assert_allclose(got, digits.reference(digits.eval_data.take(100))["logits"], atol=1e-5)


def test_data_named_x_and_missing_inputs(text_transformer, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, tokens=np.zeros((3, 8), np.int64))
    with pytest.raises(ModelLoadError, match="no array named 'input_ids'"):
        prepare_source(text_transformer, str(bad))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="junk.npz is not an .npz file"):
        prepare_source(text_transformer, str(tmp_path / "junk.npz"))
