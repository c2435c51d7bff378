"""Magnitude pruning at torch level, made permanent (zeros written into the weights)."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class PruningStats:
    requested: float
    scope: str
    layers: int
    prunable_params: int
    zeroed_params: int
    total_params: int

    @property
    def achieved(self) -> float:
        """Share of prunable weights (conv/linear) that are zero."""
        return self.zeroed_params / self.prunable_params if self.prunable_params else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["achieved"] = round(self.achieved, 6)
        d["achieved_of_all_params"] = round(self.zeroed_params / self.total_params, 6) if self.total_params else 0.0
        return d


def _prunable(module: Any) -> list[Any]:
    import torch.nn as nn

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    return [m for m in module.modules() if isinstance(m, kinds) and m.weight is not None]


def prune_magnitude(module: Any, sparsity: float, scope: str = "layer") -> tuple[Any, PruningStats]:
    """Zero the smallest-magnitude weights of every conv/linear layer of a *copy* of ``module``.

    ``scope="layer"`` prunes each layer to ``sparsity``; ``"global"`` ranks all weights together
    (layers with many small weights lose more). Biases and norms are left alone.
    """
    import torch

    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in ("layer", "global"):
        raise ConfigError(f"unknown pruning scope {scope!r}; known: layer, global")
    pruned = copy.deepcopy(module).eval()
    layers = _prunable(pruned)
    total = sum(p.numel() for p in pruned.parameters())
    if sparsity > 0 and layers:
        with torch.no_grad():
            if scope == "global":
                mags = torch.cat([m.weight.detach().abs().flatten() for m in layers])
                k = int(round(sparsity * mags.numel()))
                if k > 0:
                    threshold = torch.kthvalue(mags, k).values
                    for m in layers:
                        m.weight.mul_((m.weight.abs() > threshold).to(m.weight.dtype))
            else:
                for m in layers:
                    w = m.weight
                    k = int(round(sparsity * w.numel()))
                    if k > 0:
                        threshold = torch.kthvalue(w.detach().abs().flatten(), k).values
                        w.mul_((w.abs() > threshold).to(w.dtype))
    prunable = sum(m.weight.numel() for m in layers)
    zeroed = sum(int((m.weight == 0).sum()) for m in layers)
    return pruned, PruningStats(sparsity, scope, len(layers), prunable, zeroed, total)


def recalibrate_batchnorm(module: Any, batches: list[tuple[Any, ...]]) -> int:
    """Re-estimate BatchNorm running statistics on unlabelled inputs (in place).

    Pruning shifts every activation's mean and variance; the stored statistics then normalize
    with the wrong numbers. Averaging fresh statistics over a few batches is nearly free and
    recovers much of the loss. Returns how many BatchNorm layers were updated.
    """
    import torch
    import torch.nn as nn

    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or not batches:
        return 0
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    with torch.no_grad():
        for args in batches:
            module(*args)
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        m.train(training)
    return len(bns)
