"""User-style models whose inputs and outputs name themselves (forward's arguments, dict keys,
namedtuple fields), for the I/O naming tests."""
from collections import namedtuple

import torch
import torch.nn as nn

#: outputs in an order that is not alphabetical, so a sort by name anywhere would show
Heads = namedtuple("Heads", ["score", "embedding", "logits"])


class ImageAndFeatures(nn.Module):
    """A small conv branch on an image and a dense branch on a feature vector."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dense = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.logits = nn.Linear(16, 5)
        self.score = nn.Linear(16, 1)
        self.embedding = nn.Linear(16, 4)

    def trunk(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(image), self.dense(features)], dim=1)


class DictHeads(ImageAndFeatures):
    def forward(self, image, features):
        h = self.trunk(image, features)
        return {"logits": self.logits(h), "score": torch.sigmoid(self.score(h))}


class NamedTupleHeads(ImageAndFeatures):
    def forward(self, image, features):
        h = self.trunk(image, features)
        return Heads(score=torch.sigmoid(self.score(h)), embedding=self.embedding(h), logits=self.logits(h))


def _example():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 6, generator=g)


def dict_heads():
    return DictHeads().eval(), _example()


def namedtuple_heads():
    return NamedTupleHeads().eval(), _example()


class SpacedKey(ImageAndFeatures):
    def forward(self, image, features):
        return {"class logits": self.logits(self.trunk(image, features))}


def spaced_key():
    return SpacedKey().eval(), _example()
