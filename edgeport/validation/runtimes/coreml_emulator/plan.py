"""Planning a program's top-level steps once, at load: when each value dies, which inputs an op
may overwrite, and which activations fold into the convolution before them.

None of this changes a result; it changes how much memory the run touches. A FLOAT16 program
otherwise makes every conv write its output, read it back to round it, read it again to clip
it: three trips through memory for tensors of a million elements. Folded, the conv rounds and
clips each block of rows while the block is still in cache. Clipping to fp16-exact bounds and
rounding to fp16 commute (rounding is monotonic), so the fold gives the same values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .program import Operation

#: ops whose kernels always return a new array (or an input buffer they were allowed to take,
#: see Args.owned), never a view of a value someone else holds: their results may be rounded in
#: place and may in turn be handed to the next op to overwrite
FRESH_RESULT = frozenset({
    "conv", "conv_transpose", "linear", "matmul", "add", "sub", "mul", "real_div", "clip", "relu",
    "relu6", "sigmoid", "tanh", "silu", "gelu", "batch_norm", "layer_norm", "instance_norm",
    "softmax", "pad", "concat", "max_pool", "avg_pool", "exp", "erf", "sqrt", "rsqrt", "softplus",
})
#: ops whose kernels take an epilogue (Args.epilogue) and apply it to every block of their result
EPILOGUE_OPS = frozenset({"conv"})
_FOLDABLE = frozenset({"clip", "relu", "relu6"})


@dataclass
class StepPlan:
    dying: list[str]                 # values this step reads last: dropped after it
    owned: frozenset[str]            # input keys whose buffers the op may overwrite
    activation: tuple[float, float] | None = None  # clip bounds folded into this conv
    pad: tuple[int, int, int, int] | None = None   # zero padding (top, bottom, left, right) folded in
    alias: tuple[str, str] | None = None           # (output, source): folded into a step before


def names_used(op: Operation) -> list[str]:
    """Var names ``op`` reads, those its nested blocks read included (in order, repeats kept)."""
    names = [ref for args in op.inputs.values() for kind, ref in args if kind == "var"]
    for block in op.blocks:
        for inner in block.operations:
            names += names_used(inner)
        names += block.outputs
    return names


def _const(op: Operation, key: str, consts: dict[str, Any]) -> float | None:
    args = op.inputs.get(key)
    if not args or len(args) != 1:
        return None
    kind, ref = args[0]
    value = consts.get(ref) if kind == "var" else ref
    if value is None:
        return None
    arr = np.asarray(value)
    return float(arr.reshape(())) if arr.size == 1 and arr.dtype.kind == "f" else None


def _bounds(op: Operation, consts: dict[str, Any]) -> tuple[float, float] | None:
    if op.type == "relu":
        return 0.0, math.inf
    if op.type == "relu6":
        return 0.0, 6.0
    lo, hi = _const(op, "alpha", consts), _const(op, "beta", consts)
    return None if lo is None or hi is None or not lo <= hi else (lo, hi)


def plan_steps(steps: list[Operation], keep: set[str], consts: dict[str, Any]) -> list[StepPlan]:
    """One StepPlan per step; ``keep``: names that must survive (program outputs, inputs, consts)."""
    fresh = {name for op in steps if op.type in FRESH_RESULT for name, _ in op.outputs}
    last: dict[str, int] = {}
    readers: dict[str, int] = {}
    counts = []
    for i, op in enumerate(steps):
        used = names_used(op)
        counts.append({n: used.count(n) for n in set(used)})
        for name in set(used):
            last[name] = i
            readers[name] = readers.get(name, 0) + 1
    plans = [StepPlan([], frozenset()) for _ in steps]
    for name, i in last.items():
        if name not in keep:
            plans[i].dying.append(name)

    def sole(name: str, i: int) -> bool:  # read by step i only, once, and by nothing later
        return name not in keep and readers.get(name) == 1 and counts[i].get(name) == 1

    for i, op in enumerate(steps):
        plans[i].owned = frozenset(
            key for key, args in op.inputs.items()
            if len(args) == 1 and args[0][0] == "var" and args[0][1] in fresh and sole(args[0][1], i))
    for i in range(len(steps) - 1):
        op, nxt = steps[i], steps[i + 1]
        if op.type not in EPILOGUE_OPS or len(op.outputs) != 1 or nxt.type not in _FOLDABLE:
            continue
        out = op.outputs[0][0]
        x = nxt.inputs.get("x")
        if not x or x[0] != ("var", out) or not sole(out, i + 1) or plans[i].activation or plans[i].alias:
            continue
        if len(nxt.outputs) != 1 or nxt.outputs[0][1] != op.outputs[0][1]:
            continue
        bounds = _bounds(nxt, consts)
        if bounds is not None:
            plans[i].activation = bounds
            plans[i + 1].alias = (nxt.outputs[0][0], out)
    for i, op in enumerate(steps):
        if op.type in EPILOGUE_OPS and len(op.outputs) == 1:
            _fold_pad(steps, plans, i, consts, sole)
    return plans


def _fold_pad(steps: list[Operation], plans: list[StepPlan], i: int, consts: dict[str, Any], sole: Any) -> None:
    """conv [-> folded clip] -> zero pad of the two spatial axes: the conv writes its result into
    the padded buffer (the copy happens block by block, in cache) and the pad becomes an alias."""
    value = steps[i].outputs[0][0]
    j = i + 1
    if j < len(steps) and plans[j].alias is not None and plans[j].alias[1] == value:
        value, j = plans[j].alias[0], j + 1  # the clip folded into the conv
    if j >= len(steps) or steps[j].type != "pad" or not sole(value, j):
        return
    pad = steps[j]
    x = pad.inputs.get("x")
    widths = _const_ints(pad, "pad", consts)
    mode = pad.inputs.get("mode")
    mode = consts.get(mode[0][1], "constant") if mode and mode[0][0] == "var" else (mode[0][1] if mode else "constant")
    fill = _const(pad, "constant_val", consts) if "constant_val" in pad.inputs else 0.0
    shape = steps[i].outputs[0][1].shape if steps[i].outputs[0][1] is not None else None
    if widths is not None and len(widths) == 8 and not any(widths[:4]):
        widths = widths[4:]  # all four axes listed, batch and channels unpadded
    if (not x or x[0] != ("var", value) or widths is None or len(widths) != 4 or min(widths) < 0
            or mode != "constant" or fill != 0.0 or shape is None or len(shape) != 4):
        return
    plans[i].pad = (widths[0], widths[1], widths[2], widths[3])
    plans[j].alias = (pad.outputs[0][0], value)


def _const_ints(op: Operation, key: str, consts: dict[str, Any]) -> list[int] | None:
    args = op.inputs.get(key)
    if not args or len(args) != 1:
        return None
    kind, ref = args[0]
    value = consts.get(ref) if kind == "var" else ref
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]
