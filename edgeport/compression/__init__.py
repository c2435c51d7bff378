"""Torch-level compression, format-blind: pruning now; structured pruning and distillation later."""
from .pruning import PruningStats, prune_magnitude, recalibrate_batchnorm

__all__ = ["PruningStats", "prune_magnitude", "recalibrate_batchnorm"]
