"""Unstructured magnitude pruning, made permanent (zeros written into the weights), with
BatchNorm statistics re-estimated on unlabelled data afterwards."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..strict import limits
from .base import StepContext, StepReport

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset

#: samples of the calibration data BatchNorm statistics are re-estimated on
BATCHNORM_SAMPLES = 512


@dataclass(frozen=True)
class MagnitudePruning:
    """Zero the smallest-magnitude weights of every conv/linear layer.

    ``scope="layer"`` prunes each layer to ``sparsity``; ``"global"`` ranks all weights together
    (layers with many small weights lose more). Biases and norms are left alone.
    ``schedule="one-shot"`` prunes here; ``"gradual"`` leaves the weights to the recovery step
    that must follow (``kind = "distill"``): it raises the sparsity from 0 to ``sparsity`` along
    a cubic schedule while it trains, so the network adapts as weights go.
    """

    kind: ClassVar[str] = "magnitude"
    sparsity: float = field(default=0.0, metadata=limits(min=0.0, max=0.99, unit="(a fraction of the weights)"))
    scope: str = field(default="layer", metadata=limits(choices=("layer", "global")))
    schedule: str = field(default="one-shot", metadata=limits(choices=("one-shot", "gradual")))
    #: pruning shifts every activation's statistics; re-estimating them is nearly free
    recalibrate_batchnorm: bool = True

    def apply(self, module: Any, context: StepContext) -> tuple[Any, StepReport]:
        settings = {"sparsity": self.sparsity, "scope": self.scope, "schedule": self.schedule}
        if self.schedule == "gradual":
            return copy.deepcopy(module).eval(), StepReport(
                kind=self.kind, settings=settings, stats={"achieved": 0.0},
                note="gradual: the recovery step prunes while it trains (see its achieved sparsity)")
        data = context.calibration
        pruned, stats = prune_magnitude(module, self.sparsity, self.scope)
        bn = 0
        if self.recalibrate_batchnorm and data is not None and len(data):
            bn = recalibrate_batchnorm(pruned, _torch_batches(data.take(BATCHNORM_SAMPLES)))
        return pruned, StepReport(
            kind=self.kind, settings=settings,
            stats={**stats, "batchnorm_recalibrated_layers": bn}, zeros=stats["achieved"],
            note="unstructured zeros: smaller only where the format stores sparse weights or the "
                 "transfer is compressed (see size.gzip_bytes); no speed-up on CPU runtimes")


def _prunable(module: Any) -> list[Any]:
    import torch.nn as nn

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    return [m for m in module.modules() if isinstance(m, kinds) and m.weight is not None]


def prunable_layers(module: Any) -> list[Any]:
    """The conv / linear layers magnitude pruning works on, in module order."""
    return _prunable(module)


def magnitude_masks(layers: list[Any], sparsity: float, scope: str = "layer") -> list[Any]:
    """Keep-masks (1 = kept) zeroing the ``sparsity`` share of smallest weights, per layer or
    ranked over all ``layers`` together."""
    import torch

    with torch.no_grad():
        if sparsity <= 0 or not layers:
            return [torch.ones_like(m.weight) for m in layers]
        if scope == "global":
            mags = torch.cat([m.weight.detach().abs().flatten() for m in layers])
            k = int(round(sparsity * mags.numel()))
            if k == 0:
                return [torch.ones_like(m.weight) for m in layers]
            threshold = torch.kthvalue(mags, k).values
            return [(m.weight.abs() > threshold).to(m.weight.dtype) for m in layers]
        masks = []
        for m in layers:
            w = m.weight
            k = int(round(sparsity * w.numel()))
            if k == 0:
                masks.append(torch.ones_like(w))
                continue
            threshold = torch.kthvalue(w.detach().abs().flatten(), k).values
            masks.append((w.abs() > threshold).to(w.dtype))
        return masks


def zero_share(layers: list[Any]) -> float:
    """The share of the layers' weights that are exactly zero."""
    total = sum(m.weight.numel() for m in layers)
    return sum(int((m.weight == 0).sum()) for m in layers) / total if total else 0.0


def prune_magnitude(module: Any, sparsity: float, scope: str = "layer") -> tuple[Any, dict[str, Any]]:
    """A pruned *copy* of ``module`` and its statistics (``achieved`` = zero share of prunable weights)."""
    import torch

    pruned = copy.deepcopy(module).eval()
    layers = _prunable(pruned)
    total = sum(p.numel() for p in pruned.parameters())
    with torch.no_grad():
        for m, mask in zip(layers, magnitude_masks(layers, sparsity, scope)):
            m.weight.mul_(mask)
    prunable = sum(m.weight.numel() for m in layers)
    zeroed = sum(int((m.weight == 0).sum()) for m in layers)
    return pruned, {"requested": sparsity, "scope": scope, "layers": len(layers), "prunable_params": prunable,
                    "zeroed_params": zeroed, "total_params": total,
                    "achieved": round(zeroed / prunable, 6) if prunable else 0.0,
                    "achieved_of_all_params": round(zeroed / total, 6) if total else 0.0}


def _torch_batches(data: "Dataset", batch: int = 32) -> list[tuple[Any, ...]]:
    import torch

    names = list(data.inputs)
    return [tuple(torch.from_numpy(np.ascontiguousarray(data.inputs[n][i:i + batch])) for n in names)
            for i in range(0, len(data), batch)]


def _until(batches: list[tuple[Any, ...]], deadline: float | None):
    """The batches, none started after ``deadline`` except the first two."""
    for n, args in enumerate(batches):
        if n >= 2 and deadline is not None and time.perf_counter() > deadline:
            return
        yield args


def recalibrate_batchnorm(module: Any, batches: list[tuple[Any, ...]], deadline: float | None = None) -> int:
    """Re-estimate BatchNorm running statistics on unlabelled inputs (in place).

    Pruning shifts every activation's mean and variance; the stored statistics then normalize
    with the wrong numbers. Averaging fresh statistics over a few batches is nearly free and
    recovers much of the loss. Returns how many BatchNorm layers were updated. A model that only
    runs one sample at a time is fed sample by sample. With a ``deadline`` (a ``time.perf_counter``
    value) no batch starts after it, except the first two: the running averages of fewer batches
    are still statistics of the pruned model.
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
    try:
        with torch.no_grad():
            try:
                for args in _until(batches, deadline):
                    module(*args)
            except Exception:
                for m in bns:
                    m.reset_running_stats()
                for args in _until(batches, deadline):
                    for i in range(len(args[0])):
                        module(*(a[i:i + 1] for a in args))
    finally:
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)
    return len(bns)
