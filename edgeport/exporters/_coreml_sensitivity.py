"""Per-tensor sensitivity of a weight-compressed ML Program, measured in edgeport's emulator: each
tensor compressed alone, its layer's output SNR on calibration inputs; and the bytes each tensor's
compressed form takes in ``weight.bin``. What :mod:`._coreml_policy` ranks tensors by."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import Dataset
from ..errors import RuntimeLoadError

#: the bytes weight.bin spends per blob besides its data (a 64-byte record; data 64-byte aligned)
BLOB_RECORD, BLOB_ALIGN = 64, 64

Sizer = Callable[[tuple[int, ...]], int]




@dataclass
class Weight:
    """One compressible weight tensor of the program and what was measured about it."""

    name: str                     # the const op's output (and op) name in the float program
    op: str                       # the compute op that reads it
    elements: int
    saved_bytes: int              # fp16 bytes minus the compressed form's bytes
    #: what keeping it in the fallback form (fp16, or 8 bits for a 4-bit model) costs over compressed
    upgrade_bytes: int = 0
    #: the form it is kept in when kept: the fallback, or fp16 when that takes no more bytes
    keep_as: str = "fp16"
    sqnr_db: float = float("inf")  # its layer's output SNR with only this tensor compressed

    @property
    def harm(self) -> float:
        """Noise-to-signal ratio its compression adds to its layer's output."""
        return float(10 ** (-self.sqnr_db / 10)) if np.isfinite(self.sqnr_db) else 0.0


def blob_bytes(*sizes: int) -> int:
    """What blobs of ``sizes`` data bytes take in weight.bin, records and alignment included."""
    return sum(BLOB_RECORD + -(-n // BLOB_ALIGN) * BLOB_ALIGN for n in sizes)


def measure(fp_path: Path, compressed_path: Path, data: Dataset, stored_bytes: Sizer,
            fallback_bytes: Sizer, fallback_name: str = "fp16", correctable: bool = False) -> list[Weight]:
    """Every weight tensor the compressed program stores compressed, paired with its float
    original by position (compression adds constexpr ops and leaves the compute ops in order),
    with the bytes its compression saves and its layer's output SNR when it alone is compressed.
    ``correctable``: the error's mean per output channel is left out of the noise (bias correction
    removes it)."""
    from ..validation.runtimes.coreml_emulator.interpreter import Interpreter
    from ..validation.runtimes.coreml_emulator.program import load_program, walk

    fp = Interpreter(load_program(Path(fp_path)))
    cq_program = load_program(Path(compressed_path))
    cq = Interpreter(cq_program)
    constexpr = {name: op for op in walk(cq_program.operations) if op.type.startswith("constexpr_")
                 for name, _ in op.outputs}
    pairs: dict[int, list[tuple[str, str, str]]] = {}  # step id -> (input key, float name, compressed name)
    if len(fp.steps) != len(cq.steps):
        return []
    for a, b in zip(fp.steps, cq.steps):
        if a.type != b.type:
            return []
        for key, args in b.inputs.items():
            for (kind_b, ref_b), (kind_a, ref_a) in zip(args, a.inputs.get(key, [])):
                if kind_b == "var" and ref_b in constexpr and kind_a == "var" and ref_a in fp.consts:
                    pairs.setdefault(id(a), []).append((key, ref_a, ref_b))
    weights: dict[str, Weight] = {}
    for a in fp.steps:
        for _, name, cname in pairs.get(id(a), []):
            shape = tuple(int(d) for d in np.shape(fp.consts[name]))
            elements = int(np.prod(shape))
            fp16, compressed, fb = blob_bytes(2 * elements), stored_bytes(shape), fallback_bytes(shape)
            weights[name] = Weight(name, a.type, elements, fp16 - compressed, min(fp16, fb) - compressed,
                                   fallback_name if fb < fp16 else "fp16")

    declared = dict(fp.program.inputs)
    n = len(next(iter(data.inputs.values())))
    lead_one = all(t is not None and t.shape and t.shape[0] == 1 for t in declared.values())
    # (signal, noise) energy per tensor, summed over the samples: one batched pass, or one pass per
    # sample for a program that does not batch (a reshape to a fixed shape, say)
    energy: dict[str, list[float]] = {name: [0.0, 0.0] for name in weights}
    try:
        _sensitivity_pass(fp, cq, pairs, data.inputs, n if lead_one else None, energy, correctable)
    except RuntimeLoadError:
        energy = {name: [0.0, 0.0] for name in weights}
        for i in range(n):
            _sensitivity_pass(fp, cq, pairs, {k: v[i:i + 1] for k, v in data.inputs.items()}, None, energy,
                              correctable)
    for name, (signal, noise) in energy.items():
        weights[name].sqnr_db = (float("inf") if noise == 0 else
                                 float(10 * np.log10(max(signal, 1e-30) / noise)))
    return list(weights.values())


def _sensitivity_pass(fp: Any, cq: Any, pairs: dict[int, list[tuple[str, str, str]]], inputs: Any,
                      batch: int | None, energy: dict[str, list[float]], correctable: bool = False) -> None:
    """Run the float program once; at each op reading a compressible weight, also run the op with
    that weight alone compressed and add its output's signal and error energy to ``energy``."""
    from ..validation.runtimes.coreml_emulator.interpreter import coerce
    from ..validation.runtimes.coreml_emulator.registry import Context

    env: dict[str, Any] = dict(fp.consts)
    for name, ttype in fp.program.inputs:
        env[name] = coerce(np.asarray(inputs[name]), ttype)
    def context(scope: dict[str, Any]) -> Any:  # loops and branches run their blocks in the scope
        ctx = Context(batch=batch, run_block=lambda block, values: fp._run_block(block, values, scope, ctx))  # noqa: SLF001
        return ctx

    ctx = context(env)
    for op, plan in zip(fp.steps, fp.plans):
        if plan.alias is not None:
            env[plan.alias[0]] = env[plan.alias[1]]
            continue
        perturbed = []
        for _, name, cname in pairs.get(id(op), []):
            trial = dict(env)
            trial[name] = cq.consts[cname]
            fp._execute(op, trial, context(trial), replace(plan, owned=frozenset()))  # noqa: SLF001 - the emulator's own op runner
            perturbed.append((name, trial[op.outputs[0][0]]))
        fp._execute(op, env, ctx, plan)  # noqa: SLF001
        for name, value in perturbed:
            ref = np.asarray(env[op.outputs[0][0]], dtype=np.float64)
            energy[name][0] += float((ref ** 2).sum())
            err = ref - np.asarray(value, dtype=np.float64)
            if correctable and err.ndim >= 2:  # what bias correction leaves: the error less its channel mean
                axis = 1 if op.type == "conv" else err.ndim - 1
                err = err - err.mean(axis=tuple(a for a in range(err.ndim) if a != axis), keepdims=True)
            energy[name][1] += float((err ** 2).sum())
        for name in plan.dying:
            env.pop(name, None)
