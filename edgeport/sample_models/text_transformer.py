"""text_transformer: a 2-layer transformer encoder over int64 token ids, trained here.

No labelled natural-language corpus installs offline (scikit-learn's 20 newsgroups downloads), so
the task is synthetic, stated here in full, and its accuracy is measured on held-out sequences:

*topic vote with vetoes.* The vocabulary has 1000 ids: 8 *veto* markers (ids 1-8; ids 2t+1 and
2t+2 veto topic t), 4 topics of 200 ids each (topic t owns ids 100+200t .. 299+200t) and neutral
filler ids (9-99, 900-999). A sequence of 32 tokens is labelled with the topic that has the most
tokens **among the topics no veto marker in the sequence names**. Generated sequences always have
a unique winner, and in half of them a vetoed topic has the most tokens, so counting alone picks
the wrong topic: a token's vote depends on which markers appear elsewhere in the sequence.

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
VETO_IDS = np.arange(1, 2 * TOPICS + 1)
FILLERS = np.concatenate([np.arange(9, 100), np.arange(900, 1000)])
D_MODEL, HEADS, FF, LAYERS = 64, 4, 128, 2


def label_of(seq: np.ndarray) -> int:
    """The rule itself: the most frequent topic among the non-vetoed ones (-1 if no unique one)."""
    seq = np.asarray(seq)
    topic = seq[(seq >= 100) & (seq < 900)]
    counts = np.bincount((topic - 100) // 200, minlength=TOPICS)
    vetoed = np.unique((seq[np.isin(seq, VETO_IDS)] - 1) // 2)
    counts[vetoed] = -1
    top = counts.max()
    return int(counts.argmax()) if top >= 1 and (counts == top).sum() == 1 else -1


def _one_sequence(rng: np.random.Generator) -> np.ndarray:
    while True:
        counts = rng.integers(0, 7, TOPICS)
        vetoed = rng.permutation(TOPICS)[:int(rng.choice([0, 1, 1, 2]))]
        free = np.setdiff1d(np.arange(TOPICS), vetoed)
        if len(vetoed) and rng.random() < 0.5:  # a vetoed topic outnumbers the winner
            counts[vetoed[0]] = counts[free].max() + rng.integers(1, 3)
        markers = [int(2 * t + 1 + rng.integers(0, 2)) for t in vetoed for _ in range(rng.integers(1, 3))]
        if counts.sum() + len(markers) > SEQ_LEN:
            continue
        topic_part = np.repeat(np.arange(TOPICS), counts)
        tokens = np.concatenate([100 + 200 * topic_part + rng.integers(0, 200, len(topic_part)),
                                 np.array(markers, dtype=np.int64),
                                 rng.choice(FILLERS, SEQ_LEN - len(topic_part) - len(markers))])
        seq = tokens.astype(np.int64)[rng.permutation(SEQ_LEN)]
        if label_of(seq) >= 0:
            return seq


def make_sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated sequences [n, 32] int64 and their labels [n] int64."""
    rng = np.random.default_rng(seed)
    seqs = np.stack([_one_sequence(rng) for _ in range(n)])
    return seqs, np.array([label_of(s) for s in seqs], dtype=np.int64)


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
                        description=f"topic vote with vetoes, {len(ids)} held-out sequences")
    calib = Dataset({"input_ids": arrays["calib_input_ids"]},
                    description="topic vote with vetoes, 256 training sequences")
    return ModelSource(
        name=NAME, module=module, example_inputs=(ids[:1].copy(),),
        input_names=("input_ids",), output_names=("logits",), task="classification",
        eval_data=eval_data, calibration_data=calib, train_data=load_train,
        description=(f"2-layer transformer, synthetic topic-vote-with-vetoes task, "
                     f"{meta['parameters']:,} params, held-out top-1 {meta['accuracy']:.4f} "
                     f"({meta['eval_samples']} sequences)"),
        extra={"accuracy": meta["accuracy"]},
    )


#: sequences regenerated for compression's recovery (the training seed; the eval seed differs)
TRAIN_SEQUENCES = 8192


def load_train() -> Dataset:
    """Training sequences, regenerated deterministically from the training seed (about 2 s)."""
    x, y = make_sequences(TRAIN_SEQUENCES, seed=1)
    return Dataset({"input_ids": x}, y, description=f"topic vote with vetoes, {len(x)} training sequences (seed 1)")
