"""A source's torch module compressed by a plan's steps (pruning, low-rank, distillation), with
the steps' data taken from the source: train split, calibration inputs and output roles."""
from __future__ import annotations

from typing import Any

import numpy as np

from .compression import StepContext, compress
from .data import Dataset
from .progress import Progress
from .source import ModelSource
from .source_data import checked_data, reference_outputs
from .targets.profile import Plan
from .validation.golden import Golden
from .validation.report import Compression
from .validation.task_kinds import check_labels


def output_roles(source: ModelSource, reference: dict[str, np.ndarray],
                 labelled: Dataset | None) -> tuple[tuple[str, str, int | None], ...]:
    """(name, kind, class axis) of every output, for distillation: the kind labels give it, else a
    classifier's logits, a value per sample (regression), or anything else (an embedding)."""
    kinds = {o.name: o for o in check_labels(labelled, {n: v.shape[1:] for n, v in reference.items()})}
    roles = []
    for name, value in reference.items():
        if name in kinds:
            roles.append((name, kinds[name].kind, kinds[name].class_axis))
        elif name == source.classifier_output:
            roles.append((name, "classification", 1))
        elif value[0].size == 1:
            roles.append((name, "regression", None))
        else:
            roles.append((name, "embedding", None))
    return tuple(roles)


def compressed_module(source: ModelSource, golden: Golden, plan: Plan, progress: Progress,
                      made: dict[Any, Any]) -> tuple[Any, Golden, Compression | None, float]:
    """The plan's compression steps applied to the source module, the golden set with the
    compressed model's reference outputs, the steps' report and the fraction of zeros. ``made``
    keeps what one export call compressed: the same plan on the same source is compressed once
    (recovery can take minutes)."""
    if not plan.compression:
        return source.module, golden, None, 0.0
    key = (tuple(repr(s) for s in plan.compression), plan.channel_multiple)
    if key not in made:
        made[key] = _compress(source, golden.reference, plan, progress)
    module, steps = made[key]
    with progress.step("reference outputs of the compressed model"):
        converted = reference_outputs(source, golden.data, module)
    golden = Golden(golden.data, golden.reference, converted)
    recovery = next((s.stats for s in steps if s.kind == "distill"), None)
    return (module, golden, Compression(tuple(s.to_dict() for s in steps), recovery),
            max(s.zeros for s in steps))


def _compress(source: ModelSource, reference: dict[str, np.ndarray], plan: Plan,
              progress: Progress) -> tuple[Any, list[Any]]:
    import torch

    train = source.training_data() if any(s.kind == "distill" for s in plan.compression) else None
    if train is not None:
        checked_data(source, train)
    # statistics (BatchNorm re-estimation, importance) come from the train split when there is
    # one: with --data alone the calibration data is the eval data
    calib = train if train is not None else source.calibration_data or source.eval_data
    if calib is not None:
        calib = Dataset({n: calib.inputs[n] for n in source.input_names}, None, calib.description)
    context = StepContext(
        teacher=source.module, calibration=calib, train=train,
        example=tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in source.example_inputs),
        channel_multiple=plan.channel_multiple, seed=0,
        outputs=output_roles(source, reference, train if train is not None and train.has_labels
                             else source.eval_data),
        progress=progress)
    with progress.step("compress: " + ", ".join(s.kind for s in plan.compression)):
        return compress(source.module, plan.compression, context)
