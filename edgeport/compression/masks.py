"""The zeros recovery must keep while it trains: earlier one-shot magnitude steps' (fixed) and a
gradual step's, recomputed along its cubic schedule ``s · (1 − (1 − p)³)``."""
from __future__ import annotations

from typing import Any

from .base import StepContext

#: training progress at which a gradual schedule reaches its final sparsity
GRADUAL_END = 0.8
#: masks are recomputed this many times along a gradual schedule
GRADUAL_EVENTS = 16


class TrainingMasks:
    """Zeros that must stay zero while training: earlier one-shot magnitude steps' (fixed), and a
    gradual step's (recomputed along its schedule)."""

    def __init__(self, student: Any, context: StepContext):
        from .magnitude import MagnitudePruning, prunable_layers

        self.layers = prunable_layers(student)
        steps = [s for s in context.earlier if isinstance(s, MagnitudePruning) and s.sparsity > 0]
        gradual = [s for s in steps if s.schedule == "gradual"]
        self.gradual = (gradual[-1].sparsity, gradual[-1].scope) if gradual else None
        self.fixed = [(m.weight != 0).to(m.weight.dtype) for m in self.layers] if len(steps) > len(gradual) else None
        self.current = self.fixed
        self.level = -1
        self.settled = self.gradual is None

    def schedule(self, progress: float) -> None:
        if self.gradual is None:
            return
        level = min(GRADUAL_EVENTS, int(progress / GRADUAL_END * GRADUAL_EVENTS))
        if level > self.level:
            self.level = level
            self._prune_to(self.gradual[0] * (1 - (1 - level / GRADUAL_EVENTS) ** 3))
            self.settled = level >= GRADUAL_EVENTS

    def _prune_to(self, sparsity: float) -> None:
        import torch

        from .magnitude import magnitude_masks

        masks = magnitude_masks(self.layers, sparsity, self.gradual[1])
        if self.fixed is not None:
            masks = [a * b for a, b in zip(masks, self.fixed)]
        self.current = masks
        with torch.no_grad():
            for m, mask in zip(self.layers, masks):
                m.weight.mul_(mask)

    def apply(self) -> None:
        import torch

        if self.current is None:
            return
        with torch.no_grad():
            for m, mask in zip(self.layers, self.current):
                m.weight.mul_(mask)

    def finish(self) -> None:
        """A gradual schedule cut short (time budget) still ends at its target."""
        if self.gradual is not None and not self.settled:
            self.level = GRADUAL_EVENTS
            self._prune_to(self.gradual[0])
            self.settled = True

    def achieved(self) -> float:
        from .magnitude import zero_share

        return zero_share(self.layers) if self.layers else 0.0
