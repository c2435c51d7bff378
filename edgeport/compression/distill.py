"""Recovery after lossy steps: knowledge distillation from the original model (or plain
fine-tuning on labels), bounded in time, early-stopped on a split of the *train* data.

The teacher is the original model; the student the compressed one. Per output the loss follows
what the output is: a classifier's (or a per-pixel classifier's) logits are matched through
temperature-softened probabilities, ``T² · KL(softmax(t/T) ‖ softmax(s/T))``; a regression value
by its squared error, and any other output (an embedding) by squared error plus one minus the
cosine — each relative to the teacher's own spread, so outputs of different scale weigh alike.
Labels, where the train data has them, add ``(1 − α) · CE`` (or squared error) and the teacher's
term weighs ``α``; without labels the teacher alone teaches. ``method = "finetune"`` trains on the
labels only.

Weights zeroed by an earlier magnitude step stay zero (masks are re-applied after every update);
a ``schedule = "gradual"`` magnitude step is carried out here: its sparsity rises along
``s · (1 − (1 − p)³)`` with training progress ``p`` (the further of steps and time), reaching the
target at 80 % of the budget; the rest of the training adapts to the final mask.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from ..errors import ConfigError
from ..progress import SILENT
from ..strict import limits
from .base import StepContext, StepReport
from .losses import TrainSplit, evaluate, named, output_loss
from .masks import TrainingMasks

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset

@dataclass(frozen=True)
class Distillation:
    """Train the compressed model back towards the original on the train split."""

    kind: ClassVar[str] = "distill"
    method: str = field(default="kd", metadata=limits(choices=("kd", "finetune")))
    temperature: float = field(default=4.0, metadata=limits(min=1.0, max=50.0))
    #: weight of the teacher's term when labels exist (1: the teacher alone)
    alpha: float = field(default=0.7, metadata=limits(min=0.0, max=1.0))
    epochs: int = field(default=30, metadata=limits(min=1, max=10_000))
    #: wall-clock seconds the training may take (validation passes included)
    time_s: float = field(default=120.0, metadata=limits(min=1.0, max=86_400.0, unit="seconds"))
    lr: float = field(default=1e-3, metadata=limits(min=1e-7, max=1.0))
    batch_size: int = field(default=64, metadata=limits(min=1, max=65_536))
    #: epochs without a better validation loss before training stops
    patience: int = field(default=5, metadata=limits(min=1, max=1000))
    #: share of the train data held out for early stopping
    validation_share: float = field(default=0.1, metadata=limits(min=0.0, max=0.5))
    #: False: ignore the train data's labels (distil from the teacher alone)
    use_labels: bool = True
    #: torch threads while training (0: up to 4, as the machine has)
    threads: int = field(default=0, metadata=limits(min=0, max=256))

    def apply(self, module: Any, context: StepContext) -> tuple[Any, StepReport]:
        return recover(self, module, context)


def recover(step: Distillation, module: Any, context: StepContext) -> tuple[Any, StepReport]:
    import torch

    data = context.train
    if data is None or not len(data):
        raise ConfigError("recovery (distill) needs train data: pass --train-data FILE.npz (inputs named like the "
                          "model's, labels optional); the eval data (--data) is never trained on")
    outputs = tuple(context.outputs)
    if not outputs:
        raise ConfigError("recovery (distill) needs the model's output names and kinds")
    names = [n for n, _, _ in outputs]
    labels = _labels(data, names, outputs) if step.use_labels or step.method == "finetune" else {}
    if step.method == "finetune" and not labels:
        raise ConfigError("recovery method 'finetune' needs labels in the train data; use 'kd' to learn from "
                          "the original model without labels")
    threads = step.threads or max(1, min(4, os.cpu_count() or 1))
    saved_threads = torch.get_num_threads()
    saved_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(step, module, context, data, outputs, labels, threads)
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_det)


def _labels(data: "Dataset", names: list[str], outputs: tuple[tuple[str, str, int | None], ...]) -> dict[str, np.ndarray]:
    if not data.has_labels:
        return {}
    joined = data.labels_for(names)
    kinds = {n: k for n, k, _ in outputs}
    out = {}
    for name, lab in joined.items():
        lab = np.asarray(lab)
        if kinds.get(name) in ("classification", "segmentation"):
            if lab.dtype.kind not in "iu":
                raise ConfigError(f"train data labels for {name!r} must be integer class ids, not {lab.dtype}")
            out[name] = lab.astype(np.int64)
        elif lab.dtype.kind in "fiu":
            out[name] = lab.astype(np.float32)
    return out


def _train(step: Distillation, module: Any, context: StepContext, data: "Dataset",
           outputs: tuple[tuple[str, str, int | None], ...], labels: Mapping[str, np.ndarray],
           threads: int) -> tuple[Any, StepReport]:
    import torch

    t_start = time.perf_counter()
    torch.manual_seed(context.seed)
    gen = torch.Generator().manual_seed(context.seed)
    input_names = list(data.inputs)
    order = np.random.default_rng(context.seed).permutation(len(data))
    n_val = int(round(step.validation_share * len(data))) if len(data) >= 20 else 0
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    def split(idx: np.ndarray) -> TrainSplit:
        return TrainSplit([torch.from_numpy(np.ascontiguousarray(data.inputs[n][idx])) for n in input_names],
                      {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in labels.items()})

    train, val = split(train_idx), split(val_idx)
    teacher = context.teacher.eval()
    student = copy.deepcopy(module)
    for p in student.parameters():
        p.requires_grad_(True)
    t_teacher = time.perf_counter()
    train_targets = _teacher_outputs(teacher, train, outputs, step.batch_size)
    per_sample_s = (time.perf_counter() - t_teacher) / max(1, len(train))
    val_targets = _teacher_outputs(teacher, val, outputs, step.batch_size) if len(val) else None
    scales = {n: float(v.float().std().clamp_min(1e-6)) for n, v in train_targets.items()}
    masks = TrainingMasks(student, context)

    def loss_of(got: Mapping[str, Any], want: Mapping[str, Any], lab: Mapping[str, Any]) -> Any:
        return sum(output_loss(step, kind, axis, got[n], want[n], lab.get(n), scales[n])
                   for n, kind, axis in outputs)

    t_eval = time.perf_counter()
    before = evaluate(student, val if len(val) else train, val_targets if len(val) else train_targets,
                       outputs, step, loss_of)
    # what must still fit after training: two validation passes and BatchNorm re-estimation, from
    # the larger of two measures (the teacher's pass over the train split, this validation pass),
    # with room for a machine that slows down meanwhile
    eval_s = time.perf_counter() - t_eval
    n_eval = len(val) if len(val) else len(train)
    n_bn = _batchnorm_samples(student, context)
    reserve = 1.5 * max(per_sample_s * (2 * n_eval + n_bn), eval_s * (2 + n_bn / max(1, n_eval)))
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=step.lr, weight_decay=0.0)
    batches_per_epoch = max(1, math.ceil(len(train) / step.batch_size))
    planned = step.epochs * batches_per_epoch
    best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
    done_steps, epochs_run, stopped = 0, 0, "epochs"
    batch_s = 0.0
    with (context.progress or SILENT).bar(step.epochs, f"{step.method} recovery", unit="epoch") as bar:
        for epoch in range(step.epochs):
            student.train()
            for idx in torch.randperm(len(train), generator=gen).split(step.batch_size):
                elapsed = time.perf_counter() - t_start
                if elapsed + 2 * batch_s + reserve > step.time_s:
                    stopped = "time budget"
                    break
                t0 = time.perf_counter()
                progress = max(done_steps / planned, elapsed / step.time_s)
                masks.schedule(progress)
                xs, lab = train.rows(idx)
                got = named(student(*xs), [n for n, _, _ in outputs])
                loss = loss_of(got, {k: v[idx] for k, v in train_targets.items()}, lab)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                masks.apply()
                done_steps += 1
                batch_s = 0.8 * batch_s + 0.2 * (time.perf_counter() - t0) if batch_s else time.perf_counter() - t0
                # a forward pass costs about a third of a training step: the machine's speed now
                # (the slowest seen: a budget is a limit, so a busy machine stops training earlier)
                reserve = max(reserve, batch_s / (3 * len(idx)) * (2 * n_eval + n_bn))
            else:
                epochs_run = epoch + 1
                spent = f"{time.perf_counter() - t_start:.0f} s of {step.time_s:.0f}"
                if not masks.settled:  # a gradual schedule still pruning: no early stopping yet
                    bar.advance(f"distill: epoch {epochs_run}/{step.epochs} (pruning), {spent}")
                    continue
                if len(val):
                    if time.perf_counter() - t_start + 2 * reserve > step.time_s:
                        stopped = "time budget"
                        break
                    metric = evaluate(student, val, val_targets, outputs, step, loss_of)
                    bar.advance(f"distill: epoch {epochs_run}/{step.epochs}, validation loss {metric['loss']:.4f}, {spent}",
                                f"validation loss {metric['loss']:.4f}")
                    if metric["loss"] < best_loss - 1e-6:
                        best_loss, best_state, best_epoch, stale = metric["loss"], copy.deepcopy(student.state_dict()), epochs_run, 0
                    else:
                        stale += 1
                        if stale >= step.patience:
                            stopped = "early stop (validation loss)"
                            break
                else:
                    bar.advance(f"distill: epoch {epochs_run}/{step.epochs}, {spent}")
                continue
            break
    masks.finish()
    if best_state is not None:
        # the last weights or the best validated ones, whichever the validation split prefers
        if evaluate(student, val, val_targets, outputs, step, loss_of)["loss"] >= best_loss:
            student.load_state_dict(best_state)
    student.eval()
    masks.apply()
    # the last validation pass must still fit: BatchNorm re-estimation stops early when it would not
    bn = _recalibrate(student, context, t_start + step.time_s - reserve * n_eval / max(1, 2 * n_eval + n_bn))
    after = evaluate(student, val if len(val) else train, val_targets if len(val) else train_targets,
                      outputs, step, loss_of)
    seconds = time.perf_counter() - t_start
    stats: dict[str, Any] = {
        "method": step.method, "epochs_run": epochs_run, "best_epoch": best_epoch or epochs_run, "steps": done_steps,
        "stopped": stopped, "seconds": round(seconds, 2), "time_budget_s": step.time_s,
        "train_samples": len(train), "validation_samples": len(val),
        "labels_used": sorted(labels), "threads": threads, "seed": context.seed,
        "before": before, "after": after, "batchnorm_recalibrated_layers": bn,
        "validated_on": "validation split of the train data" if len(val) else "the train data (too few samples to hold some out)",
    }
    if masks.gradual is not None:
        stats["gradual_sparsity"] = {"target": masks.gradual[0], "scope": masks.gradual[1],
                                     "achieved": round(masks.achieved(), 6)}
    settings = {"method": step.method, "temperature": step.temperature, "alpha": step.alpha,
                "epochs": step.epochs, "time_s": step.time_s, "lr": step.lr}
    return student, StepReport(kind=step.kind, settings=settings, stats=stats, zeros=masks.achieved(),
                               note="trained on the train split only; the eval split judges the result")


def _teacher_outputs(teacher: Any, data: TrainSplit, outputs: tuple[tuple[str, str, int | None], ...],
                     batch: int) -> dict[str, Any]:
    import torch

    names = [n for n, _, _ in outputs]
    parts: dict[str, list[Any]] = {n: [] for n in names}
    with torch.no_grad():
        for start in range(0, len(data), batch):
            got = named(teacher(*[x[start:start + batch] for x in data.inputs]), names)
            for n in names:
                parts[n].append(got[n].detach())
    return {n: torch.cat(v) if v else torch.empty(0) for n, v in parts.items()}


def _batchnorm_samples(student: Any, context: StepContext) -> int:
    """How many samples the BatchNorm re-estimation after training will run (0 without BatchNorm)."""
    import torch.nn as nn

    from .magnitude import BATCHNORM_SAMPLES

    if context.train is None or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in student.modules()):
        return 0
    return min(BATCHNORM_SAMPLES, len(context.train))


def _recalibrate(student: Any, context: StepContext, deadline: float) -> int:
    """BatchNorm statistics re-estimated after training, on the train split's inputs."""
    from .magnitude import BATCHNORM_SAMPLES, _torch_batches, recalibrate_batchnorm

    data = context.train
    if data is None or not len(data):
        return 0
    return recalibrate_batchnorm(student, _torch_batches(data.take(BATCHNORM_SAMPLES)), deadline)
