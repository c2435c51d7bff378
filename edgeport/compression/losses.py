"""What distillation optimizes and watches: the loss per output kind, and the student's figures
against the teacher (and the labels) on a split."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ..errors import ConfigError


class LossSettings(Protocol):
    """What the losses read of a distillation step (:class:`~.distill.Distillation` has them)."""

    method: str          # "kd" or "finetune"
    temperature: float
    alpha: float         # weight of the soft (teacher) term beside labelled cross-entropy
    batch_size: int


@dataclass
class TrainSplit:
    """Tensors of one split of the train data (training or validation rows)."""

    inputs: list[Any]                      # one tensor per model input, [N, ...]
    labels: dict[str, Any]                 # output name -> tensor [N, ...]

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0]) if self.inputs else 0

    def rows(self, idx: Any) -> tuple[list[Any], dict[str, Any]]:
        return [x[idx] for x in self.inputs], {k: v[idx] for k, v in self.labels.items()}


def named(result: Any, names: list[str]) -> dict[str, Any]:
    """The module's outputs keyed by the source's output names (a tensor, tuple, list or dict)."""
    import torch

    if isinstance(result, torch.Tensor):
        leaves = [result]
    elif isinstance(result, Mapping):
        leaves = list(result.values())
    elif isinstance(result, (tuple, list)):
        leaves = list(result)
    else:
        raise ConfigError(f"cannot train on a module returning {type(result).__name__}")
    return dict(zip(names, leaves))


def output_loss(step: LossSettings, kind: str, axis: int | None, got: Any, want: Any, label: Any,
                 scale: float) -> Any:
    import torch.nn.functional as F

    got = got.float()
    want = want.float()
    if kind in ("classification", "segmentation"):
        ax = axis if axis is not None else 1
        t = step.temperature
        soft = F.kl_div(F.log_softmax(got / t, dim=ax), F.log_softmax(want / t, dim=ax), log_target=True,
                        reduction="none").sum(ax).mean() * t * t
        if label is None:
            return soft if step.method == "kd" else got.sum() * 0
        hard = F.cross_entropy(got.movedim(ax, 1), label.reshape(got.movedim(ax, 1).shape[:1] + got.movedim(ax, 1).shape[2:]))
        return hard if step.method == "finetune" else step.alpha * soft + (1 - step.alpha) * hard
    flat_g, flat_w = got.reshape(len(got), -1), want.reshape(len(want), -1)
    soft = ((flat_g - flat_w) ** 2).mean() / (scale * scale)
    if kind != "regression" and flat_g.shape[1] > 1:
        soft = soft + (1 - F.cosine_similarity(flat_g, flat_w, dim=1, eps=1e-8)).mean()
    if label is None:
        return soft if step.method == "kd" else got.sum() * 0
    hard = ((flat_g - label.float().reshape(flat_g.shape)) ** 2).mean() / (scale * scale)
    return hard if step.method == "finetune" else step.alpha * soft + (1 - step.alpha) * hard


def evaluate(student: Any, data: TrainSplit, targets: Mapping[str, Any] | None, outputs: tuple[tuple[str, str, int | None], ...],
              step: LossSettings, loss_of: Any) -> dict[str, Any]:
    """Loss and, for classification outputs, agreement with the teacher and accuracy on labels."""
    import torch

    names = [n for n, _, _ in outputs]
    student.eval()
    parts: dict[str, list[Any]] = {n: [] for n in names}
    with torch.no_grad():
        for start in range(0, len(data), step.batch_size):
            got = named(student(*[x[start:start + step.batch_size] for x in data.inputs]), names)
            for n in names:
                parts[n].append(got[n])
        got = {n: torch.cat(v) for n, v in parts.items()}
        result: dict[str, Any] = {"loss": round(float(loss_of(got, targets, data.labels)), 6)}
        for n, kind, axis in outputs:
            if kind in ("classification", "segmentation"):
                ax = axis if axis is not None else 1
                pred = got[n].argmax(ax)
                result[f"agreement:{n}"] = round(float((pred == targets[n].argmax(ax)).float().mean()), 6)
                if n in data.labels:
                    result[f"accuracy:{n}"] = round(float((pred == data.labels[n].reshape(pred.shape)).float().mean()), 6)
            else:  # error relative to the teacher's spread (0: the teacher's values exactly)
                want = targets[n].float()
                result[f"relative_mse:{n}"] = round(float(((got[n].float() - want) ** 2).mean()
                                                          / want.var().clamp_min(1e-12)), 6)
    return result
