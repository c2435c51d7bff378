"""Structured pruning: whole channels (conv) and neurons (linear) removed through torch-pruning's
dependency graph, so every coupled tensor shrinks with them (BatchNorm, the next layer's inputs,
residual partners, flatten→linear) and the model stays dense.

What is never pruned: the width of any model output (the layers producing outputs are ignored),
embedding vocabularies (torch-pruning only narrows an embedding's width), and every width coupled
to a layer torch-pruning cannot prune correctly — ``nn.MultiheadAttention`` (its heads cannot be
removed), recurrent layers, and matrix products of two activations (hand-written attention, which
torch-pruning would couple element-wise instead of per head). Each is named in the report's
``left_alone`` with its reason, as is any group whose pruning torch-pruning refused or which broke
the model's forward pass (then the others are pruned again without it).
"""
from __future__ import annotations

import copy
import fnmatch
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConversionError, one_line
from ..io_names import flatten_outputs
from ..strict import limits
from .base import StepContext, StepReport
from .inspection import (
    MACS_COUNTER,
    example_batch,
    macs_per_sample,
    module_names,
    output_shapes,
    parameter_count,
    require_grad,
    restore_grad,
    shape_problem,
    torch_pruning,
)
from .magnitude import BATCHNORM_SAMPLES, _torch_batches, recalibrate_batchnorm

#: torch-pruning's stage name in errors
STAGE = "channel pruning (torch-pruning)"
#: autograd node names of matrix products (``addmm`` inside nn.Linear is told apart by its operands)
_MATMUL_NAMES = ("mmbackward", "bmmbackward", "matmulbackward", "einsum", "scaleddotproduct", "attention")


@dataclass(frozen=True)
class ChannelPruning:
    """Remove the least important channels / neurons of every prunable layer group.

    ``ratio`` is the share removed (per group with ``scope="layer"``; ranked over all groups with
    ``"global"``); importance is the group's L1 or L2 weight magnitude. Kept counts are rounded
    down to ``channel_multiple`` (``0``: the target's preferred multiple, its CPU kernels' vector
    width) and never below it. ``layers`` / ``skip_layers`` are module-name patterns
    (``fnmatch``, e.g. ``"*.ff.0"``) choosing which groups may be pruned.
    """

    kind: ClassVar[str] = "channels"
    ratio: float = field(default=0.0, metadata=limits(min=0.0, max=0.95, unit="(a fraction of the channels)"))
    importance: str = field(default="l2", metadata=limits(choices=("l1", "l2")))
    scope: str = field(default="layer", metadata=limits(choices=("layer", "global")))
    channel_multiple: int = field(default=0, metadata=limits(min=0, max=1024, unit="(0: the target's)"))
    layers: tuple[str, ...] = ()
    skip_layers: tuple[str, ...] = ()
    #: pruning shifts every activation's statistics; re-estimating them is nearly free
    recalibrate_batchnorm: bool = True

    def apply(self, module: Any, context: StepContext) -> tuple[Any, StepReport]:
        example = example_batch(context, "channel pruning")
        multiple = self.channel_multiple or max(1, context.channel_multiple)
        base = copy.deepcopy(module).eval()
        flags = require_grad(base)
        expected = output_shapes(base, example)
        plan = _analyse(base, example, self, multiple)
        pruned, channels = _prune(base, example, expected, self, multiple, plan)
        restore_grad(pruned, flags)
        restore_grad(base, flags)
        bn = 0
        data = context.calibration
        if self.recalibrate_batchnorm and channels and data is not None and len(data):
            bn = recalibrate_batchnorm(pruned, _torch_batches(data.take(BATCHNORM_SAMPLES)))
        stats = _stats(base, pruned, example, channels, plan, multiple, self.channel_multiple)
        stats["batchnorm_recalibrated_layers"] = bn
        note = ("dense and smaller in every format: removed channels and neurons shrink the weights and "
                f"the compute; faster on CPU runtimes where kept counts fit the kernels' vector width "
                f"(here multiples of {multiple}); accuracy needs recovery (fine-tuning, distillation) "
                "at high ratios")
        if not channels:
            note = "nothing was pruned (see left_alone): the model is unchanged"
        return pruned, StepReport(
            kind=self.kind, settings={"ratio": self.ratio, "importance": self.importance, "scope": self.scope,
                                      "layers": list(self.layers), "skip_layers": list(self.skip_layers)},
            stats=stats, zeros=0.0, note=note)


@dataclass
class _Plan:
    """What the analysis decided: module names torch-pruning must ignore (their output widths
    stay), the reasons to report, the groups the settings excluded, and per-group ratio overrides."""

    ignore: set[str] = field(default_factory=set)
    left_alone: list[dict[str, Any]] = field(default_factory=list)
    not_selected: list[str] = field(default_factory=list)
    overrides: dict[str, float] = field(default_factory=dict)

    def leave(self, root: str, members: list[str], reason: str) -> None:
        self.ignore.update(members)
        entry: dict[str, Any] = {"module": root, "reason": reason}
        coupled = [m for m in members if m != root]
        if coupled:
            entry["coupled"] = coupled[:10] + ([f"... {len(coupled) - 10} more"] if len(coupled) > 10 else [])
        self.left_alone.append(entry)


def _frozen_reason(m: Any) -> str | None:
    from torch import nn

    if isinstance(m, nn.MultiheadAttention):
        return ("nn.MultiheadAttention: torch-pruning cannot remove its heads; it and every width "
                "coupled to its embedding width are left alone")
    if isinstance(m, nn.RNNBase):
        return (f"recurrent layer (nn.{type(m).__name__}): left alone, with every width coupled to "
                "its input and hidden sizes")
    return None


def _recurrent_pruner(tp: Any) -> Any:
    """A torch-pruning layer handler for recurrent layers that declares their widths (so the
    dependency graph couples them to their neighbours) and never prunes them: their groups are
    left alone. Without it torch-pruning would treat a GRU as an element-wise op and its weights
    as loose parameters."""

    class RecurrentLeftAlone(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer: Any, idxs: Any) -> Any:
            raise RuntimeError(f"{type(layer).__name__} is left alone")

        def prune_in_channels(self, layer: Any, idxs: Any) -> Any:
            raise RuntimeError(f"{type(layer).__name__} is left alone")

        def get_out_channels(self, layer: Any) -> int:
            width = getattr(layer, "proj_size", 0) or layer.hidden_size
            return width * (2 if layer.bidirectional else 1)

        def get_in_channels(self, layer: Any) -> int:
            return layer.input_size

    return RecurrentLeftAlone()


def _customized(model: Any, tp: Any) -> dict[type, Any] | None:
    from torch import nn

    kinds = {type(m) for m in model.modules() if isinstance(m, nn.RNNBase)}
    if not kinds:
        return None
    pruner = _recurrent_pruner(tp)
    return {k: pruner for k in kinds}


def _trace(model: Any, example: tuple[Any, ...], tp: Any) -> tuple[Any, set[Any]]:
    """torch-pruning's dependency graph of ``model`` and the autograd nodes of its outputs."""
    import torch

    outputs: list[Any] = []

    def keep(out: Any) -> Any:
        outputs.append(out)
        return out

    try:
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example, output_transform=keep, verbose=False,
                customized_pruners=_customized(model, tp))
    except Exception as exc:
        raise ConversionError("torch", STAGE, f"cannot trace {type(model).__name__}: {one_line(exc)}") from exc
    fns = set()
    for out in outputs:
        for _, t in flatten_outputs(out):
            if t.grad_fn is not None:
                fns.add(t.grad_fn)
    return graph, fns


def _groups(graph: Any, names: dict[int, str], tp: Any) -> Any:
    """``(root name, group or the exception building it)`` for every conv/linear layer's output
    channels, each coupled group once (torch-pruning's ``get_all_groups``, one root at a time so
    that a root it cannot follow fails alone)."""
    seen: set[int] = set()
    roots = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR)
    for m in list(graph.module2node):
        if id(m) in seen or id(m) not in names or not isinstance(m, roots):
            continue
        handler = graph.get_pruner_of_module(m)
        channels = None if handler is None else handler.get_out_channels(m)
        if channels is None:
            continue
        try:
            group = graph.get_pruning_group(m, handler.prune_out_channels, list(range(channels)))
        except Exception as exc:  # noqa: BLE001 - torch-pruning cannot map indices through some op of this model
            seen.add(id(m))
            yield names[id(m)], exc
            continue
        seen.update(id(dep.target.module) for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler))
        yield names[id(m)], group


def _is_activation_matmul(node: Any, real: set[int], tp: Any) -> bool:
    """A matrix product of two activations (not nn.Linear's own product with its weight)."""
    fn = node.grad_fn
    if fn is None or id(node.module) in real or not any(k in fn.name().lower() for k in _MATMUL_NAMES):
        return False

    def from_activations(n: Any) -> bool:
        # a node without inputs that is no module of the model was computed from parameters only
        return n.type != tp.ops.OPTYPE.PARAMETER and (bool(n.inputs) or id(n.module) in real)

    return sum(from_activations(n) for n in node.inputs) >= 2


def _analyse(base: Any, example: tuple[Any, ...], step: ChannelPruning, multiple: int) -> _Plan:
    """Which groups torch-pruning may prune, decided once on a copy of the model."""
    tp = torch_pruning()
    model = copy.deepcopy(base)
    names = module_names(model)
    real = set(names)
    graph, output_fns = _trace(model, example, tp)
    plan = _Plan()
    frozen: dict[int, str] = {}
    for m in model.modules():
        reason = _frozen_reason(m)
        if reason and id(m) not in frozen:
            plan.leave(names[id(m)], [], reason)
            plan.ignore.add(names[id(m)])
            frozen.update({id(sub): names[id(m)] for sub in m.modules()})
    for root, group in _groups(graph, names, tp):
        if isinstance(group, Exception):
            owner = _frozen_consumer(graph, root, names, frozen, tp)
            plan.leave(root, [root], f"coupled to {owner!r}, which is left alone" if owner else
                       "torch-pruning cannot follow its channels through the model "
                       f"({type(group).__name__}: {one_line(group)})")
            continue
        members = [names[id(dep.target.module)] for dep, _ in group
                   if id(dep.target.module) in real and graph.is_out_channel_pruning_fn(dep.handler)]
        reason = _group_reason(group, graph, names, output_fns, frozen, tp)
        channels = graph.get_out_channels(group[0].dep.target.module)
        if reason is None and multiple > 1 and channels <= multiple:
            reason = f"{channels} channels: no fewer can be kept that are a multiple of {multiple}"
        if reason is not None:
            plan.leave(root, members, reason)
        elif not _selected(members, step):
            plan.ignore.update(members)
            plan.not_selected.append(root)
    return plan


def _frozen_consumer(graph: Any, root: str, names: dict[int, str], frozen: dict[int, str], tp: Any) -> str | None:
    """The left-alone layer the output channels of ``root`` flow into, if any (through every op
    and module up to the next conv / linear layer)."""
    start = next(n for m, n in graph.module2node.items() if names.get(id(m)) == root)
    todo, seen = list(start.outputs), set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node.module) in frozen:
            return frozen[id(node.module)]
        if not isinstance(node.module, (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR)):
            todo.extend(node.outputs)
    return None


def _group_reason(group: Any, graph: Any, names: dict[int, str], output_fns: set[Any], frozen: dict[int, str],
                  tp: Any) -> str | None:
    """Why a coupled group must keep its width (``None``: it may be pruned)."""
    real = set(names)
    for dep, _ in group:
        node = dep.target
        is_module = id(node.module) in real
        if node.grad_fn in output_fns and not (is_module and graph.is_in_channel_pruning_fn(dep.handler)):
            return "produces a model output (outputs keep their shapes)"
        owner = frozen.get(id(node.module)) if is_module else None
        if owner is not None:
            return f"coupled to {owner!r}, which is left alone"
        if _is_activation_matmul(node, real, tp):
            return ("its channels meet another activation in a matrix product (attention-style): "
                    "torch-pruning would couple them element-wise, not per head")
    return None


def _selected(members: list[str], step: ChannelPruning) -> bool:
    def hit(patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(m, p) for m in members for p in patterns)

    return (not step.layers or hit(step.layers)) and not hit(step.skip_layers)


def _prune(base: Any, example: tuple[Any, ...], expected: list[tuple[str, tuple[int, ...]]], step: ChannelPruning,
           multiple: int, plan: _Plan) -> tuple[Any, dict[str, list[int]]]:
    """A pruned copy of ``base`` and ``{group root: [channels before, after]}``.

    torch-pruning prunes one group at a time; a group it refuses, that breaks the forward pass
    or changes an output is left alone (and reported), and the pruning starts again from the
    unpruned model without it. A group whose rounded kept count would be 0 keeps exactly one
    multiple."""
    import torch

    tp = torch_pruning()
    importance = tp.importance.MagnitudeImportance(p=1 if step.importance == "l1" else 2)
    if step.ratio <= 0:
        return copy.deepcopy(base), {}
    for _ in range(2 * sum(1 for _ in base.modules()) + 2):  # each retry leaves a group alone or fixes one
        work = copy.deepcopy(base)
        by_name = dict(work.named_modules())
        names = module_names(work)
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")
            try:
                pruner = tp.pruner.BasePruner(
                    work, example, importance=importance, global_pruning=step.scope == "global",
                    pruning_ratio=step.ratio, ignored_layers=[by_name[n] for n in sorted(plan.ignore)],
                    pruning_ratio_dict={by_name[n]: r for n, r in plan.overrides.items()} or None,
                    round_to=multiple if multiple > 1 else None, customized_pruners=_customized(work, tp),
                    root_module_types=[tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR])
            except Exception as exc:
                raise ConversionError("torch", STAGE, f"cannot trace {type(base).__name__}: {one_line(exc)}") from exc
            channels, retry = _prune_groups(work, pruner, names, example, expected, multiple, plan)
        if not retry:
            return work, channels
    raise ConversionError("torch", STAGE, f"{type(base).__name__}: no stable set of prunable groups was found")


def _prune_groups(work: Any, pruner: Any, names: dict[int, str], example: tuple[Any, ...],
                  expected: list[tuple[str, tuple[int, ...]]], multiple: int,
                  plan: _Plan) -> tuple[dict[str, list[int]], bool]:
    """Prune the pruner's groups in turn; ``True`` when one had to be left alone or given its
    own ratio (start again)."""
    graph = pruner.DG
    channels: dict[str, list[int]] = {}
    # torch-pruning silently skips a group whose rounded kept count is 0 (round_to above what is
    # left, or a global ranking that takes a whole layer): such groups keep one multiple instead
    emptied: list[Any] = []
    check = graph.check_pruning_group

    def check_and_note(group: Any) -> bool:
        ok = check(group)
        if not ok:
            emptied.append(group[0].dep.target.module)
        return ok

    graph.check_pruning_group = check_and_note
    for group in pruner.step(interactive=True):
        root_module = group[0].dep.target.module
        root = names[id(root_module)]
        members = [names[id(dep.target.module)] for dep, _ in group
                   if id(dep.target.module) in names and graph.is_out_channel_pruning_fn(dep.handler)]
        before = graph.get_out_channels(root_module)
        try:
            group.prune()
        except Exception as exc:  # noqa: BLE001 - torch-pruning refused this group: the rest may still be pruned
            plan.leave(root, members, f"torch-pruning failed on it: {type(exc).__name__}: {one_line(exc)}")
            return channels, True
        problem = shape_problem(work, example, expected)
        if problem is not None:
            plan.leave(root, members, f"pruning it {problem}")
            return channels, True
        channels[root] = [before, graph.get_out_channels(root_module)]
    for module in emptied:
        name, before = names[id(module)], graph.get_out_channels(module)
        if before <= multiple or name in plan.overrides:
            plan.leave(name, [name], f"{before} channels: no fewer can be kept that are a multiple of {multiple}")
        else:
            plan.overrides[name] = 1.0 - (multiple + 0.5) / before
    return channels, bool(emptied)


def _stats(base: Any, pruned: Any, example: tuple[Any, ...], channels: dict[str, list[int]], plan: _Plan,
           multiple: int, asked: int) -> dict[str, Any]:
    from torch import nn

    kinds = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)
    before_shapes = {n: tuple(m.weight.shape) for n, m in base.named_modules() if isinstance(m, kinds)}
    changed = [n for n, m in pruned.named_modules()
               if isinstance(m, kinds) and before_shapes.get(n) != tuple(m.weight.shape)]
    params = (parameter_count(base), parameter_count(pruned))
    macs = (macs_per_sample(base, example), macs_per_sample(pruned, example))
    kept = sum(a for _, a in channels.values())
    total = sum(b for b, _ in channels.values())
    return {
        "channel_multiple": multiple, "channel_multiple_from": "setting" if asked else "target",
        "params_before": params[0], "params_after": params[1],
        "params_ratio": round(params[1] / params[0], 4) if params[0] else 1.0,
        "macs_before": macs[0], "macs_after": macs[1],
        "macs_ratio": round(macs[1] / macs[0], 4) if macs[0] and macs[1] is not None else None,
        "macs_counter": MACS_COUNTER,
        "layers_pruned": len(changed), "groups_pruned": len(channels),
        "channels_kept_share": round(kept / total, 4) if total else 1.0,
        "channels": channels, "left_alone": plan.left_alone, "not_selected": plan.not_selected,
    }
