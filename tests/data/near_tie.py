"""A two-logit model whose arg-max fp16 arithmetic flips (for the ``--task`` tests)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


class NearTie(nn.Module):
    """Two logits about 1000 apart from zero that differ by at most 0.2: fp16 stores 1000 with a
    spacing of 0.5, so fp16 arithmetic flips the arg-max of many samples while every element-wise
    figure (cosine, SQNR, max-abs) stays far inside fp16's tolerance."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        y = 1000 + 10 * torch.tanh(self.lin(x))
        return torch.cat([y, y + 0.2 * torch.tanh(x[:, :1])], 1)


def near_tie() -> tuple[nn.Module, tuple[np.ndarray]]:
    return NearTie().eval(), (np.zeros((1, 8), np.float32),)
