"""Magnitude pruning: achieved sparsity, scopes, and what it really buys in each format."""
from __future__ import annotations

import pytest

from edgeport.compression.magnitude import prune_magnitude
from edgeport.compression.request import CompressionRequest
from edgeport.pipeline import export


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_achieved_sparsity(digits, scope):
    pruned, stats = prune_magnitude(digits.module, 0.5, scope)
    assert stats["layers"] == 5 and abs(stats["achieved"] - 0.5) < 0.01
    # the source module is untouched
    assert sum(int((p == 0).sum()) for p in digits.module.parameters()) < 100
    if scope == "layer":
        import torch.nn as nn

        for m in pruned.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                assert abs(float((m.weight == 0).float().mean()) - 0.5) < 0.02


def test_pruned_export_reports_sparsity_and_shrinks_gzip(digits, tmp_path):
    (dense,) = export(digits, ["local-onnx"], precision="fp32", out_dir=tmp_path / "d")
    (sparse,) = export(digits, ["local-onnx"], precision="fp32", compression=CompressionRequest(sparsity=0.5),
                       out_dir=tmp_path / "s")
    r = sparse.report
    (step,) = r.compression.steps
    assert step["kind"] == "magnitude" and step["achieved"] == pytest.approx(0.5, abs=0.01)
    assert r.parity.reference == "compressed source model"
    parity = next(c for c in r.checks if c.name == "parity")
    assert parity.passed  # the conversion itself is exact; pruning's cost shows in accuracy
    # BatchNorm statistics re-estimated after pruning: without it this model lost ~15 points
    assert step["batchnorm_recalibrated_layers"] == 3
    assert r.accuracy.drop < 0.05
    # the artifact may lose the compression budget (1 point) plus fp32's conversion tolerance;
    # the compressed torch model alone is held to the budget
    accuracy = next(c for c in r.checks if c.name == "accuracy_drop")
    assert accuracy.passed == (r.accuracy.drop <= 0.012)
    own = next(c for c in r.checks if c.name == "compression:accuracy_drop")
    assert own.passed == (r.compression.accuracy.drop <= 0.01)
    assert abs(r.compression.accuracy.drop - r.accuracy.drop) < 0.003  # fp32 conversion is exact
    # ONNX stores zeros densely: same file size, smaller gzip (what a compressed download sees)
    assert abs(r.size.artifact_bytes - dense.report.size.artifact_bytes) < 2048
    assert r.size.gzip_bytes < 0.8 * dense.report.size.gzip_bytes


def test_channel_pruned_tflite_ratio_divides_by_the_dense_model(digits, tmp_path):
    """The TFLite exporter's own fp32 pass (made for int8) is of the pruned module: the ratio must divide by
    the dense model at fp32 (the compression's savings count), as on every other target."""
    (dense,) = export(digits, ["android-tflite"], precision="fp32", out_dir=tmp_path / "d")
    (pruned,) = export(digits, ["android-tflite"], precision="int8-dynamic",
                       compression=CompressionRequest(prune_channels=0.5, recover="none"), out_dir=tmp_path / "p")
    d, p = dense.report.size, pruned.report.size
    assert p.fp32_bytes == d.artifact_bytes == d.fp32_bytes
    assert p.artifact_bytes < 0.15 * d.artifact_bytes and p.ratio == round(p.artifact_bytes / d.artifact_bytes, 4)
