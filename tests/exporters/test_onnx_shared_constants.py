"""Identical initializers of a quantize_static graph are stored once, and nothing it computes changes."""
from __future__ import annotations

import numpy as np


def test_zero_points_shared_among_equal_widths_keep_every_output(tmp_path):
    import onnx
    import onnxruntime as ort
    import torch
    import torch.nn as nn
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgeport.exporters.onnx_shared_constants import share_identical_initializers

    class TwoHeads(nn.Module):
        """Three 16-wide convolutions and two outputs of different widths."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = nn.Conv2d(3, 16, 3, padding=1)
            self.b = nn.Conv2d(16, 16, 3, padding=1)
            self.c = nn.Conv2d(16, 16, 1)
            self.head = nn.Linear(16, 5)

        def forward(self, x):
            y = self.c(torch.relu(self.b(torch.relu(self.a(x)))))
            return self.head(y.mean((2, 3))), y

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3, 9, 11)).astype(np.float32)
    fp32 = tmp_path / "fp32.onnx"
    torch.onnx.export(TwoHeads().eval(), (torch.from_numpy(x[:1]),), str(fp32), input_names=["x"],
                      dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter({"x": x[i:i + 1]} for i in range(8))

        def get_next(self):
            return next(self._it, None)

    q = tmp_path / "int8.onnx"
    quantize_static(str(fp32), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    model = onnx.load(str(q))
    before = len(model.graph.initializer)
    removed, saved = share_identical_initializers(model)
    shared = tmp_path / "shared.onnx"
    onnx.save(model, str(shared))
    onnx.checker.check_model(str(shared))
    # the 16-wide convolutions' weight zero points (int8[16]) and bias zero points (int32[16]) repeat
    assert removed >= 4 and saved >= 2 * 16 + 2 * 16 * 4
    assert len(model.graph.initializer) == before - removed
    assert shared.stat().st_size < q.stat().st_size
    names = [i.name for i in model.graph.initializer]
    assert len(set(names)) == len(names)

    def run(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [s.run(None, {"x": x[i:i + 1]}) for i in range(len(x))]

    for a, b in zip(run(q), run(shared)):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    # a second pass finds nothing left to share
    assert share_identical_initializers(model) == (0, 0)
