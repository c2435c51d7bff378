"""Control flow: ``while_loop`` (blocks: cond, body) and ``cond`` (blocks: true, false).

coremltools emits ``while_loop`` for recurrent layers it cannot map to one MIL op (e.g. GRU with
torch.jit.trace): the loop variables are a step counter and a state tensor, the body updates
them with ordinary ops, which the interpreter runs (and rounds) one by one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ....errors import RuntimeLoadError
from .registry import Args, Context, op

#: a crafted program's loop condition may never turn false; real sequence loops run far fewer steps
MAX_ITERATIONS = 1_000_000


def _truth(value: Any, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise RuntimeLoadError(f"{what}: condition has {arr.size} values, one expected")
    return bool(arr.reshape(()))


@op("while_loop")
def _while_loop(a: Args, ctx: Context) -> tuple[Any, ...]:
    if len(a.blocks) != 2 or ctx.run_block is None:
        raise RuntimeLoadError(f"while_loop has {len(a.blocks)} blocks; cond and body expected")
    cond, body = a.blocks
    values = a.list("loop_vars")
    for _ in range(MAX_ITERATIONS):
        (flag,) = ctx.run_block(cond, values) or (None,)
        if not _truth(flag, "while_loop"):
            return tuple(values)
        values = ctx.run_block(body, values)
    raise RuntimeLoadError(f"while_loop ran {MAX_ITERATIONS} iterations without ending; refused")


@op("cond")
def _cond(a: Args, ctx: Context) -> tuple[Any, ...]:
    if len(a.blocks) != 2 or ctx.run_block is None:
        raise RuntimeLoadError(f"cond has {len(a.blocks)} blocks; true and false branches expected")
    branch = a.blocks[0] if _truth(a["pred"], "cond") else a.blocks[1]
    return tuple(ctx.run_block(branch, []))
