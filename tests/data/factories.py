"""User-style factories for the source-loading tests."""
import torch
import torch.nn as nn


class TwoHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(12, 32), nn.ReLU())
        self.a = nn.Linear(32, 5)
        self.b = nn.Linear(32, 3)

    def forward(self, x):
        h = self.body(x)
        return self.a(h), self.b(h)


def two_head():
    return TwoHead().eval(), (torch.randn(1, 12),)


def broken():
    raise RuntimeError("weights missing")
