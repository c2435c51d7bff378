"""Torch-level compression, format-blind: pruning now; structured pruning and distillation later."""
from .pruning import PruningStats, prune_magnitude

__all__ = ["PruningStats", "prune_magnitude"]
