"""What the structural steps (channel pruning, low-rank factorization) need to look at a module:
one example batch to run it on, the shapes of what it returns, its size and its
multiply-accumulate count."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from ..io_names import flatten_outputs
from .base import StepContext

#: how the step reports name the compute figures they give. torch-pruning's own counter
#: (``count_ops_and_params``) looks modules up by exact class: it missed EfficientNet-Lite0's
#: Conv2d subclasses (21 M counted of 385 M) and every matrix product written in forward()
MACS_COUNTER = ("torch.utils.flop_counter.FlopCounterMode on one sample, FLOPs / 2: the multiply-accumulates "
                "of every convolution and matrix product the forward pass runs (hand-written attention "
                "included); element-wise ops, norms and activations are not counted")


def example_batch(context: StepContext, step: str) -> tuple[Any, ...]:
    """The inputs (torch tensors, model input order) a step traces the model with:
    ``context.example``, else the first calibration sample."""
    import torch

    if context.example:
        return tuple(x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
                     for x in context.example)
    data = context.calibration
    if data is not None and len(data):
        return tuple(torch.from_numpy(np.ascontiguousarray(v[:1])) for v in data.inputs.values())
    raise ConfigError(f"{step} needs example inputs (or calibration data) to trace the model; none were given")


def first_sample(example: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(x[:1] for x in example)


def run(module: Any, example: tuple[Any, ...]) -> list[tuple[str, Any]]:
    """``module(*example)`` without gradients, its outputs flattened as the exporters name them."""
    import torch

    with torch.no_grad():
        return flatten_outputs(module(*example))


def output_shapes(module: Any, example: tuple[Any, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(t.shape)) for name, t in run(module, example)]


def shape_problem(module: Any, example: tuple[Any, ...], expected: list[tuple[str, tuple[int, ...]]]) -> str | None:
    """Why ``module`` no longer runs on ``example`` or returns other shapes than ``expected``
    (``None``: it runs and every output kept its shape)."""
    from ..errors import one_line

    try:
        got = output_shapes(module, example)
    except Exception as exc:  # noqa: BLE001 - the changed module is judged, not trusted
        return f"forward() fails afterwards ({type(exc).__name__}: {one_line(exc)})"
    if got != expected:
        changed = [f"{n} {list(a)} -> {list(b)}" for (n, a), (_, b) in zip(expected, got) if a != b]
        return "changes the model's outputs (" + (", ".join(changed) or "different outputs") + ")"
    return None


def parameter_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def torch_pruning() -> Any:
    """The ``torch_pruning`` package, or the error naming what to install."""
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise MissingDependencyError("torch-pruning", hint="pip install torch-pruning==1.6.1") from exc
    return tp


def macs_per_sample(module: Any, example: tuple[Any, ...]) -> int | None:
    """Multiply-accumulates for one sample (see :data:`MACS_COUNTER`); ``None`` when the counter
    cannot run this module (its figure is information, never a check)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*first_sample(example))
    except Exception:  # noqa: BLE001 - an op the counter cannot follow: no figure rather than a wrong one
        return None
    return int(counter.get_total_flops()) // 2


def module_names(module: Any) -> dict[int, str]:
    """``id(submodule) -> qualified name`` (the root is ``""``; a shared module keeps its first name)."""
    names: dict[int, str] = {}
    for name, m in module.named_modules(remove_duplicate=False):
        names.setdefault(id(m), name)
    return names



def require_grad(module: Any) -> dict[str, bool]:
    """Make every parameter of ``module`` (a step's own copy) require grad, and return the flags
    it had: autograd is how torch-pruning and the output-producer walk see the graph, and a
    frozen model would show none. :func:`restore_grad` puts them back."""
    flags = {name: p.requires_grad for name, p in module.named_parameters()}
    for p in module.parameters():
        p.requires_grad_(True)
    return flags


def restore_grad(module: Any, flags: dict[str, bool]) -> None:
    """The flags :func:`require_grad` returned, by parameter name (replaced parameters too)."""
    for name, p in module.named_parameters():
        p.requires_grad_(flags.get(name, True))
