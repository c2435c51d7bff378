"""Low-rank factorization: a wide ``nn.Linear`` (or 1×1 ``nn.Conv2d``) with weight W (out×in)
becomes two thin layers, in→r then r→out, from W's truncated SVD — fewer weights and fewer
multiply-adds in every format, when r is small enough for the pair to be smaller than W."""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ..io_names import flatten_outputs
from ..strict import limits
from .base import StepContext, StepReport
from .inspection import (
    MACS_COUNTER,
    example_batch,
    macs_per_sample,
    output_shapes,
    parameter_count,
    require_grad,
    restore_grad,
    shape_problem,
)

#: autograd nodes of a sum: where two activations meet (a residual connection), the walk stops
_JOINS = ("AddBackward0", "SubBackward0")


@dataclass(frozen=True)
class LowRankFactorization:
    """Replace each eligible layer by the two factors of its truncated SVD.

    The rank r is the smallest that keeps ``energy`` of the squared singular values, or
    ``rank_ratio`` × min(in, out); exactly one is given. A layer is skipped (and reported) when
    min(in, out) < ``min_features``, when the pair would not be smaller (r·(in+out) ≥ in·out),
    or when it produces a model output (unless ``include_outputs``). ``layers`` /
    ``skip_layers`` are module-name patterns (``fnmatch``) choosing the layers considered.
    """

    kind: ClassVar[str] = "low_rank"
    energy: float | None = field(default=None, metadata=limits(
        min=0.01, max=1.0, unit="(kept share of the squared singular values)"))
    rank_ratio: float | None = field(default=None, metadata=limits(min=0.01, max=1.0, unit="(rank / min(in, out))"))
    min_features: int = field(default=32, metadata=limits(min=1, max=1 << 20))
    include_outputs: bool = False
    layers: tuple[str, ...] = ()
    skip_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.energy is None) == (self.rank_ratio is None):
            raise ConfigError("low_rank: give exactly one of energy (kept share of the squared singular values, "
                              "e.g. 0.9) or rank_ratio (rank / min(in, out), e.g. 0.25)")

    def apply(self, module: Any, context: StepContext) -> tuple[Any, StepReport]:
        example = example_batch(context, "low-rank factorization")
        base = copy.deepcopy(module).eval()
        flags = require_grad(base)
        expected = output_shapes(base, example)
        work = copy.deepcopy(base)
        candidates = _candidates(work)
        producers = _output_producers(work, example)
        inside_attention = _inside_attention(work)
        factorized: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        not_selected: list[str] = []
        for name, layer in candidates:
            if not self._selected(name):
                not_selected.append(name)
                continue
            done, entry = self._factorize(work, (name, layer), producers, inside_attention.get(id(layer)),
                                          example, expected)
            (factorized if done else skipped).append(entry)
        restore_grad(work, flags)
        restore_grad(base, flags)
        params = (parameter_count(base), parameter_count(work))
        macs = (macs_per_sample(base, example), macs_per_sample(work, example))
        stats = {
            "params_before": params[0], "params_after": params[1],
            "params_ratio": round(params[1] / params[0], 4) if params[0] else 1.0,
            "macs_before": macs[0], "macs_after": macs[1],
            "macs_ratio": round(macs[1] / macs[0], 4) if macs[0] and macs[1] is not None else None,
            "macs_counter": MACS_COUNTER,
            "layers_factorized": len(factorized), "factorized": factorized, "skipped": skipped,
            "not_selected": not_selected,
        }
        note = ("fewer weights and multiply-adds in every format: each factorized layer is two thin ones "
                "(in→r→out); faster where a layer is big enough that the saved work outweighs one more "
                "kernel; accuracy follows the kept energy (recovery by fine-tuning helps)")
        if not factorized:
            note = "no layer was factorized (see skipped): the model is unchanged"
        return work, StepReport(
            kind=self.kind, settings={"energy": self.energy, "rank_ratio": self.rank_ratio,
                                      "min_features": self.min_features, "include_outputs": self.include_outputs,
                                      "layers": list(self.layers), "skip_layers": list(self.skip_layers)},
            stats=stats, zeros=0.0, note=note)

    def _selected(self, name: str) -> bool:
        def hit(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(name, p) for p in patterns)

        return (not self.layers or hit(self.layers)) and not hit(self.skip_layers)

    def _rank(self, singular: Any) -> tuple[int, float]:
        """The kept rank and the share of squared singular values it keeps."""
        import torch

        power = singular.double() ** 2
        cumulative = torch.cumsum(power, 0) / power.sum().clamp_min(1e-300)
        k = len(singular)
        if self.energy is not None:
            rank = min(k, int((cumulative < self.energy - 1e-12).sum()) + 1)
        else:
            rank = min(k, max(1, round(self.rank_ratio * k)))
        return rank, float(cumulative[rank - 1])

    def _factorize(self, work: Any, named: tuple[str, Any], producers: set[int], attention: str | None,
                   example: tuple[Any, ...], expected: list[tuple[str, tuple[int, ...]]]) -> tuple[bool, dict[str, Any]]:
        """Factorize the layer ``named`` inside ``work`` in place: ``(done, its report entry)``."""
        import torch

        name, layer = named
        weight = layer.weight.detach()
        out_f, in_f = weight.shape[0], weight.shape[1]
        entry: dict[str, Any] = {"module": name, "in": in_f, "out": out_f}
        reason = _own_forward(layer)
        if attention is not None:  # it reads its projections' weights itself: a pair would break it
            reason = f"inside nn.MultiheadAttention {attention!r}, which reads its weights directly"
        if reason is None and min(in_f, out_f) < self.min_features:
            reason = f"min(in, out) = {min(in_f, out_f)} < min_features {self.min_features}"
        if reason is None and id(layer) in producers and not self.include_outputs:
            reason = "produces a model output (include_outputs = true factorizes it too)"
        if reason is not None:
            return False, {**entry, "reason": reason}
        u, s, vh = torch.linalg.svd(weight.reshape(out_f, in_f).double(), full_matrices=False)
        rank, kept = self._rank(s)
        entry.update(rank=rank, kept_energy=round(kept, 6))
        if rank * (in_f + out_f) >= in_f * out_f:
            return False, {**entry, "reason": f"not smaller: rank {rank} gives r·(in+out) = {rank * (in_f + out_f)} "
                                               f"≥ in·out = {in_f * out_f} weights"}
        root = s[:rank].sqrt()  # the singular values split evenly: both factors keep similar ranges
        pair = _pair(layer, (u[:, :rank] * root).to(weight.dtype), (root[:, None] * vh[:rank]).to(weight.dtype))
        parents = _references(work, layer)
        for parent, attr in parents:
            setattr(parent, attr, pair)
        problem = shape_problem(work, example, expected)
        if problem is not None:
            for parent, attr in parents:
                setattr(parent, attr, layer)
            return False, {**entry, "reason": f"factorizing it {problem}"}
        return True, entry


def _candidates(module: Any) -> list[tuple[str, Any]]:
    from torch import nn

    out = []
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
                                        and m.groups == 1):
            out.append((name, m))
    return out


def _own_forward(layer: Any) -> str | None:
    """Why a subclass that overrides ``forward`` is kept: its computation may be more than W·x
    (padding, weight standardization...), which two plain layers would silently drop."""
    from torch import nn

    base = nn.Linear if isinstance(layer, nn.Linear) else nn.Conv2d
    if type(layer).forward is base.forward:
        return None
    return f"{type(layer).__name__} overrides forward(): two plain {base.__name__} layers might not compute the same"


def _inside_attention(module: Any) -> dict[int, str]:
    """``id`` of every layer inside an ``nn.MultiheadAttention`` -> that attention's name."""
    from torch import nn

    return {id(sub): name for name, m in module.named_modules() if isinstance(m, nn.MultiheadAttention)
            for sub in m.modules()}


def _pair(layer: Any, left: Any, right: Any) -> Any:
    """``right`` (r×in) then ``left`` (out×r) as layers of ``layer``'s kind; the bias goes on the second."""
    import torch
    from torch import nn

    rank, (out_f, in_f) = right.shape[0], (left.shape[0], right.shape[1])
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        first, second = nn.Linear(in_f, rank, bias=False), nn.Linear(rank, out_f, bias=bias)
        w1, w2 = right, left
    else:
        first = nn.Conv2d(in_f, rank, 1, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                          bias=False, padding_mode=layer.padding_mode)
        second = nn.Conv2d(rank, out_f, 1, bias=bias)
        w1, w2 = right[:, :, None, None], left[:, :, None, None]
    pair = nn.Sequential(first, second).to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        first.weight.copy_(w1)
        second.weight.copy_(w2)
        if bias:
            second.bias.copy_(layer.bias.detach())
    return pair.train(layer.training)


def _references(root: Any, layer: Any) -> list[tuple[Any, str]]:
    """Every ``(parent, attribute)`` holding ``layer`` (a shared layer is held more than once)."""
    return [(parent, attr) for parent in root.modules() for attr, child in parent._modules.items()
            if child is layer]


def _output_producers(module: Any, example: tuple[Any, ...]) -> set[int]:
    """``id`` of each conv/linear layer whose result reaches a model output without passing
    another parametric layer or a sum of two activations (a residual stream joins every block's
    result: those blocks are not the output's own layer). Found by walking autograd back from
    the outputs."""
    import torch
    from torch import nn

    kinds = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding, nn.RNNBase, nn.MultiheadAttention)
    made: dict[Any, int] = {}

    def record(m: Any, _inputs: Any, out: Any) -> None:
        first = out[0] if isinstance(out, tuple) else out
        if isinstance(first, torch.Tensor) and first.grad_fn is not None:
            made.setdefault(first.grad_fn, id(m))

    hooks = [m.register_forward_hook(record) for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.enable_grad():
            outputs = flatten_outputs(module(*example))
    finally:
        for h in hooks:
            h.remove()
    todo = [t.grad_fn for _, t in outputs]
    seen, producers = set(), set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in made:
            producers.add(made[fn])
            continue
        inputs = [f for f, _ in fn.next_functions if f is not None and "AccumulateGrad" not in f.name()]
        if fn.name() in _JOINS and len(inputs) >= 2:
            continue  # a residual sum: the layers feeding it are not the output's own layer
        todo.extend(inputs)
    return producers
