"""text_transformer: a 2-layer transformer encoder over int64 token ids, trained here.

No labelled natural-language corpus installs offline (scikit-learn's 20 newsgroups downloads), so
the task is synthetic but honest, and needs attention to solve:

*negated topic vote.* The vocabulary has 1000 ids: 8 *negation* markers (ids 1-8), 4 topics of
200 ids each (topic t owns ids 100+200t .. 299+200t) and neutral filler ids (9-99, 900-999).
A sequence of 32 tokens is labelled with the topic that has the most topic tokens **that are not
immediately preceded by a negation marker**. Generated sequences always have a unique winner, and
half of them carry enough negated tokens that a plain bag-of-words count picks the wrong topic,
so the model must look at each token's left neighbour (positions + attention), not just count.

Input ``input_ids`` [1, 32] int64, output ``logits`` [1, 4]. The shipped ``data/text_eval.npz``
holds 512 held-out sequences (``input_ids``, ``labels``) drawn with a different seed from the
training ones, and 256 training sequences for calibration (``calib_input_ids``).
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..data import Dataset
from ..source import ModelSource
from ._storage import data_path, load_state, read_npz, weights_path

NAME = "text_transformer"
DATA_STEM = "text_eval"
SEQ_LEN = 32
VOCAB = 1000
TOPICS = 4
NEGATIONS = np.arange(1, 9)
FILLERS = np.concatenate([np.arange(9, 100), np.arange(900, 1000)])
D_MODEL, HEADS, FF, LAYERS = 64, 4, 128, 2


def topic_ids(t: int) -> np.ndarray:
    """The 200 token ids that belong to topic ``t``."""
    return np.arange(100 + 200 * t, 300 + 200 * t)


def label_of(seq: np.ndarray) -> int:
    """The rule itself: the topic with most non-negated topic tokens (ties resolve to -1)."""
    counts = np.zeros(TOPICS, dtype=int)
    for i, tok in enumerate(seq):
        if 100 <= tok < 900 and not (i > 0 and seq[i - 1] in NEGATIONS):
            counts[(tok - 100) // 200] += 1
    top = counts.max()
    return int(counts.argmax()) if (counts == top).sum() == 1 else -1


def _one_sequence(rng: np.random.Generator) -> np.ndarray:
    while True:
        counted = rng.integers(0, 6, TOPICS)
        if (counted == counted.max()).sum() != 1:
            continue
        negated = rng.integers(0, 3, TOPICS)
        if rng.random() < 0.5:  # make the bag-of-words count point at a wrong topic
            winner = int(counted.argmax())
            other = int(rng.choice([t for t in range(TOPICS) if t != winner]))
            negated[other] = counted[winner] - counted[other] + rng.integers(1, 3)
        stray = int(rng.integers(0, 3))  # negation markers before fillers: markers alone mean nothing
        if counted.sum() + 2 * (negated.sum() + stray) <= SEQ_LEN:
            break
    units: list[list[int]] = []
    for t in range(TOPICS):
        units += [[int(rng.choice(topic_ids(t)))] for _ in range(counted[t])]
        units += [[int(rng.choice(NEGATIONS)), int(rng.choice(topic_ids(t)))] for _ in range(negated[t])]
    units += [[int(rng.choice(NEGATIONS)), int(rng.choice(FILLERS))] for _ in range(stray)]
    free = SEQ_LEN - sum(len(u) for u in units)
    units += [[int(rng.choice(FILLERS))] for _ in range(free)]
    order = rng.permutation(len(units))
    return np.array([tok for i in order for tok in units[i]], dtype=np.int64)


def make_sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated sequences [n, 32] int64 and their labels [n] int64."""
    rng = np.random.default_rng(seed)
    seqs = np.stack([_one_sequence(rng) for _ in range(n)])
    labels = np.array([label_of(s) for s in seqs], dtype=np.int64)
    assert (labels >= 0).all()
    return seqs, labels


def build_module() -> Any:
    """The untrained encoder (pre-LayerNorm, plain Linear/softmax attention so it exports cleanly)."""
    import torch
    import torch.nn as nn

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(D_MODEL, D_MODEL) for _ in range(3))
            self.out = nn.Linear(D_MODEL, D_MODEL)
            self.scale = 1.0 / math.sqrt(D_MODEL // HEADS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, _ = x.shape

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.reshape(b, n, HEADS, D_MODEL // HEADS).transpose(1, 2)

            q, k, v = heads(self.q(x) * self.scale), heads(self.k(x)), heads(self.v(x))
            att = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
            return self.out((att @ v).transpose(1, 2).reshape(b, n, D_MODEL))

    class EncoderLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
            self.attn = SelfAttention()
            self.ff = nn.Sequential(nn.Linear(D_MODEL, FF), nn.ReLU(), nn.Linear(FF, D_MODEL))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.attn(self.norm1(x))
            return x + self.ff(self.norm2(x))

    class TextTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_MODEL)
            self.pos = nn.Parameter(torch.zeros(1, SEQ_LEN, D_MODEL))
            self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
            self.norm = nn.LayerNorm(D_MODEL)
            self.head = nn.Linear(D_MODEL, TOPICS)
            nn.init.normal_(self.pos, std=0.02)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            x = self.embed(input_ids) + self.pos
            for layer in self.layers:
                x = layer(x)
            return self.head(self.norm(x).mean(dim=1))

    return TextTransformer()


def load() -> ModelSource:
    """The trained encoder with its shipped weights, held-out sequences and calibration subset."""
    module = load_state(build_module(), NAME)
    arrays = read_npz(data_path(DATA_STEM))
    meta = json.loads(weights_path(NAME).with_suffix(".json").read_text())
    ids = arrays["input_ids"]
    eval_data = Dataset({"input_ids": ids}, arrays["labels"],
                        description=f"negated topic vote, {len(ids)} held-out sequences")
    calib = Dataset({"input_ids": arrays["calib_input_ids"]},
                    description="negated topic vote, 256 training sequences")
    return ModelSource(
        name=NAME, module=module, example_inputs=(ids[:1].copy(),),
        input_names=("input_ids",), output_names=("logits",), task="classification",
        eval_data=eval_data, calibration_data=calib,
        description=(f"2-layer transformer, synthetic negated-topic-vote task, "
                     f"{meta['parameters']:,} params, held-out top-1 {meta['accuracy']:.4f} "
                     f"({meta['eval_samples']} sequences)"),
        extra={"accuracy": meta["accuracy"]},
    )
