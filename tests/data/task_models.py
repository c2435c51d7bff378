"""Small models with labelled outputs of each task kind, their weights solved or set by hand (no
training loop: the same numbers in every process), on scikit-learn's digits."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from edgeport.data import Dataset
from edgeport.source import ModelSource

TRAIN = 1200  # the first TRAIN digits fit the heads; the rest are held out


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images [N,1,8,8] in 0..1, digit labels [N], ink: the share of pixels above 0.5 [N])."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    ink = (x > 0.5).reshape(len(x), -1).mean(1).astype(np.float32)
    return x, d.target.astype(np.int64), ink


class Heads(nn.Module):
    """A digit image -> class logits [N, 10] and a regression value per sample [N]."""

    def __init__(self, classes: np.ndarray, value: np.ndarray) -> None:
        super().__init__()
        self.logits = nn.Linear(64, 10)
        self.value = nn.Linear(64, 1)
        for layer, w in ((self.logits, classes), (self.value, value)):
            layer.weight.data = torch.from_numpy(w[:-1].T.copy())
            layer.bias.data = torch.from_numpy(w[-1].copy())

    def forward(self, image):
        flat = image.flatten(1)
        return self.logits(flat), self.value(flat).squeeze(1)


def _heads_module() -> Heads:
    x, y, ink = digits()
    feats = np.concatenate([x[:TRAIN].reshape(TRAIN, -1), np.ones((TRAIN, 1), np.float32)], 1)
    onehot = np.eye(10, dtype=np.float32)[y[:TRAIN]]
    classes = np.linalg.lstsq(feats, onehot, rcond=None)[0].astype(np.float32)
    value = np.linalg.lstsq(feats, ink[:TRAIN, None], rcond=None)[0].astype(np.float32)
    return Heads(classes, value).eval()


def heads() -> ModelSource:
    """Outputs ``logits`` and ``ink``; labels come with ``--data``."""
    x, _, _ = digits()
    return ModelSource(name="heads", module=_heads_module(), example_inputs=(x[:1],), input_names=("image",),
                       output_names=("logits", "ink"))


def heads_labelled() -> ModelSource:
    """The same model with its own labelled eval data: labels per output from the Python API."""
    x, y, ink = digits()
    held = slice(TRAIN, TRAIN + 64)
    data = Dataset({"image": x[held]}, output_labels={"logits": y[held], "ink": ink[held]},
                   description="digits, 64 held out")
    return ModelSource(name="heads_labelled", module=_heads_module(), example_inputs=(x[:1],),
                       input_names=("image",), output_names=("logits", "ink"), eval_data=data)


class Segmenter(nn.Module):
    """A noisy digit [N,1,8,8] -> per-pixel logits [N,3,8,8] for background / faint / strong ink:
    a fixed 3x3 smoothing then a 1x1 convolution whose scores cross at 0.25 and 0.6."""

    def __init__(self) -> None:
        super().__init__()
        self.smooth = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.head = nn.Conv2d(1, 3, 1)
        kernel = torch.full((1, 1, 3, 3), 0.05)
        kernel[0, 0, 1, 1] = 0.6
        self.smooth.weight.data = kernel
        self.head.weight.data = torch.tensor([0.0, 10.0, 20.0]).reshape(3, 1, 1, 1)
        self.head.bias.data = torch.tensor([0.0, -2.5, -8.5])

    def forward(self, x):
        return self.head(self.smooth(x))


def pixel_classes(images: np.ndarray) -> np.ndarray:
    """Per-pixel class ids [N, 8, 8] of clean digit images: 0 below 0.25, 1 below 0.6, else 2."""
    return np.digitize(images[:, 0], [0.25, 0.6]).astype(np.int64)


def noisy_digits(n: int = 96) -> np.ndarray:
    x, _, _ = digits()
    noise = np.random.default_rng(0).normal(0, 0.15, x[:n].shape).astype(np.float32)
    return np.clip(x[:n] + noise, 0, 1).astype(np.float32)


def segmenter() -> ModelSource:
    x = noisy_digits(1)
    return ModelSource(name="segmenter", module=Segmenter().eval(), example_inputs=(x,), input_names=("x",),
                       output_names=("mask",))
