"""digits_cnn: a small CNN trained here on scikit-learn's real handwritten digits (8x8, 10 classes).

Input ``x`` [1, 1, 8, 8] float32 (pixel values 0..16 divided by 16, so 0..1); output ``logits``
[1, 10]. The data set is split 80/20, stratified, with a fixed seed; the held-out 20 % (360
images) is shipped as ``data/digits_eval.npz`` (``x``, ``labels``) together with 256 training
images for calibration (``calib_x``), so calibration never sees an evaluation image.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..data import Dataset
from ..source import ModelSource
from ._storage import data_path, load_state, read_npz, weights_path

NAME = "digits_cnn"
DATA_STEM = "digits_eval"
#: the training split, shipped for compression's recovery: pixel values 0..16 as uint8 (the
#: model's input is value / 16, the same floats ``make_splits`` gives)
TRAIN_STEM = "digits_train"
SPLIT_SEED = 0
CALIB_SAMPLES = 256


def build_module() -> Any:
    """The untrained network: three 3x3 conv blocks (BatchNorm + ReLU), two poolings, a small head.

    Channel counts 32/64/96 (~125 k parameters) keep the graph overhead of the exported file small
    next to its weights, so precision changes show up in the artifact size.
    """
    import torch.nn as nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 64), nn.MaxPool2d(2),        # 8x8 -> 4x4
        *block(64, 96), nn.MaxPool2d(2),                        # 4x4 -> 2x2
        nn.Flatten(), nn.Linear(96 * 2 * 2, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def make_splits() -> dict[str, np.ndarray]:
    """The deterministic train / held-out split of ``load_digits`` (needs scikit-learn)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, y, test_size=0.2, stratify=y, random_state=SPLIT_SEED)
    calib_idx = np.random.default_rng(SPLIT_SEED).choice(len(x_tr), CALIB_SAMPLES, replace=False)
    return {"train_x": x_tr, "train_labels": y_tr, "x": x_ev, "labels": y_ev,
            "calib_x": x_tr[np.sort(calib_idx)]}


def load() -> ModelSource:
    """The trained CNN with its shipped weights, held-out data and calibration subset."""
    module = load_state(build_module(), NAME)
    arrays = read_npz(data_path(DATA_STEM))
    meta = json.loads(weights_path(NAME).with_suffix(".json").read_text())
    eval_data = Dataset({"x": arrays["x"]}, arrays["labels"],
                        description=f"sklearn digits, held-out 20% ({len(arrays['x'])} images)")
    calib = Dataset({"x": arrays["calib_x"]}, description="sklearn digits, 256 training images")
    return ModelSource(
        name=NAME, module=module, example_inputs=(arrays["x"][:1].copy(),),
        input_names=("x",), output_names=("logits",), task="classification",
        eval_data=eval_data, calibration_data=calib, train_data=load_train,
        description=(f"CNN on sklearn 8x8 digits, {meta['parameters']:,} params, "
                     f"held-out top-1 {meta['accuracy']:.4f} ({meta['eval_samples']} images)"),
        extra={"accuracy": meta["accuracy"]},
    )


def load_train() -> Dataset:
    """The 80 % training split (labelled) the shipped weights were trained on."""
    arrays = read_npz(data_path(TRAIN_STEM))
    x = arrays["pixels"].astype(np.float32) / 16.0
    return Dataset({"x": x}, arrays["labels"].astype(np.int64),
                   description=f"sklearn digits, training 80% ({len(x)} images)")
