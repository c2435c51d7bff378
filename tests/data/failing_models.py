"""Small models that real converters refuse or crash on, and a tiny one they all take, for the
failure-message and log tests. Factories return ``(module, example_inputs)``."""
import numpy as np
import torch
import torch.nn as nn


class ComplexRotation(nn.Module):
    """Rotary-style: pairs of features as complex numbers, rotated by exp(iθ). torch's ONNX
    exporter has no translation of a complex exp."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        z = torch.view_as_complex(self.lin(x).reshape(x.shape[0], 4, 2))
        return torch.exp(z).imag


class TinyGRU(nn.Module):
    """One GRU layer. Kept as a While loop (a sequence longer than edgeport unrolls), TensorFlow's
    int8 calibrator crashes (SIGSEGV) on it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(4, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        seq, _ = self.gru(x)
        return self.head(seq[:, -1])


def _inputs(*shape: int) -> tuple[np.ndarray]:
    return (np.random.default_rng(0).standard_normal(shape).astype(np.float32),)


def complex_rotation():
    return ComplexRotation().eval(), _inputs(1, 8)


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval(), _inputs(1, 8)


def tiny_cnn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    return net.eval(), _inputs(1, 1, 8, 8)


def long_gru():
    """Longer than edgeport unrolls (onnx_rnn_unroll.MAX_STEPS): the GRU stays a While loop."""
    return TinyGRU().eval(), _inputs(1, 520, 4)
