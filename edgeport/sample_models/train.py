"""Retrain the shipped sample models deterministically and rewrite their weights and data.

    python -m edgeport.sample_models.train [digits_cnn|text_transformer|all]

Fixed seeds, one CPU thread and torch's deterministic algorithms: the same torch version on the
same kind of CPU rewrites the same bytes. Each model trains in well under two minutes.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np

from . import digits_cnn, text_transformer
from ..validation.metrics import top1_accuracy as accuracy
from ._storage import DATA_DIR, WEIGHTS_DIR, data_path, weights_path

SEED = 0


def _deterministic() -> None:
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def fit(module: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, batch: int,
        augment: Callable[[Any, Any], Any] | None = None) -> Any:
    """Plain AdamW + cosine schedule, shuffled mini-batches from a seeded generator."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    module.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            xb = xt[idx] if augment is None else augment(xt[idx], gen)
            loss = F.cross_entropy(module(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return module.eval()


def _predict(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _shift_pixels(xb: Any, gen: Any) -> Any:
    """Move each digit by up to one pixel in each direction (zero fill): cheap, label-preserving."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(xb, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + 8, dx:dx + 8]


def _save(name: str, module: Any, acc: float, n_eval: int, **extra: Any) -> None:
    import torch

    WEIGHTS_DIR.mkdir(exist_ok=True)
    torch.save(module.state_dict(), weights_path(name))
    meta = {"accuracy": round(acc, 6), "eval_samples": n_eval, "torch": torch.__version__,
            "parameters": sum(p.numel() for p in module.parameters()),
            "seed": SEED, **extra}
    weights_path(name).with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def train_digits() -> float:
    """Train digits_cnn on the 80 % split; return held-out accuracy."""
    _deterministic()
    s = digits_cnn.make_splits()
    module = fit(digits_cnn.build_module(), s["train_x"], s["train_labels"],
                 epochs=40, lr=3e-3, batch=64, augment=_shift_pixels)
    acc = accuracy(_predict(module, s["x"]), s["labels"])
    DATA_DIR.mkdir(exist_ok=True)
    np.savez_compressed(data_path(digits_cnn.DATA_STEM), x=s["x"], labels=s["labels"], calib_x=s["calib_x"])
    np.savez_compressed(data_path(digits_cnn.TRAIN_STEM), pixels=np.rint(s["train_x"] * 16).astype(np.uint8),
                        labels=s["train_labels"].astype(np.uint8))
    _save(digits_cnn.NAME, module, acc, len(s["x"]),
          data="sklearn load_digits, stratified 80/20 split, random_state=0")
    return acc


def train_text() -> float:
    """Train text_transformer on generated sequences; return held-out accuracy."""
    tt = text_transformer
    _deterministic()
    x_tr, y_tr = tt.make_sequences(48000, seed=1)
    x_ev, y_ev = tt.make_sequences(512, seed=2)
    module = fit(tt.build_module(), x_tr, y_tr, epochs=3, lr=3e-3, batch=64)
    acc = accuracy(_predict(module, x_ev), y_ev)
    DATA_DIR.mkdir(exist_ok=True)
    np.savez_compressed(data_path(tt.DATA_STEM), input_ids=x_ev, labels=y_ev, calib_input_ids=x_tr[:256])
    _save(tt.NAME, module, acc, len(x_ev),
          data="synthetic topic-vote-with-vetoes sequences, train seed 1, eval seed 2")
    return acc


TRAINERS: dict[str, Callable[[], float]] = {"digits_cnn": train_digits, "text_transformer": train_text}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: retrain the named sample(s) and print their held-out accuracy."""
    parser = argparse.ArgumentParser(prog="python -m edgeport.sample_models.train",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=[*TRAINERS, "all"])
    args = parser.parse_args(argv)
    for name, trainer in TRAINERS.items():
        if args.which in (name, "all"):
            t0 = time.perf_counter()
            acc = trainer()
            print(f"{name}: held-out top-1 {acc:.4f} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
