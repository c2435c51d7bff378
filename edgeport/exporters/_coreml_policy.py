"""Which weight tensors of an ML Program to compress, chosen by measurement (CoreML int8 / lut).

A fixed rule — compress every tensor (``weight_threshold = 0``), or only those of 2048 elements
and more (coremltools' default) — is blind to two facts that decide the trade: how many bytes a
tensor's compression buys, and how much error it adds. On EfficientNet-Lite0 the tiny stem and
first depthwise kernels (288-1296 weights, 0.1 % of the bytes) carried most of the int8 error.
So both are measured:

- **bytes**: what compressing the tensor saves over its fp16 storage (indices or int8 values,
  plus the scales, zero points or lookup tables it adds, each a 64-byte-aligned blob with a
  64-byte record in ``weight.bin``: a tiny tensor's compressed form can be *larger*);
- **sensitivity**: its own layer's output SNR (dB) on calibration inputs with that tensor alone
  compressed, run in edgeport's ML Program emulator with every other tensor float.

The policy keeps float every tensor whose compression saves no bytes, then those with the most
error per byte saved, within a float budget (a share of the compressed weight bytes), skipping
tensors whose layer SNR stays above the fp16 noise floor. The guard judges each candidate end to
end on calibration inputs (never evaluation data) by the parity check's criteria; a candidate
that misses them gets a larger budget; the cheapest meeting them ships, else the best measured.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import numpy as np

from ..data import Dataset
from ..errors import RuntimeLoadError

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

#: float budgets tried in turn: the bytes kept float, as a share of the all-compressed weight bytes
FLOAT_BUDGETS = (0.001, 0.005, 0.02, 0.08)
#: a tensor whose layer keeps an output SNR above this (dB) compressed stays compressed whatever
#: it saves: fp16 storage itself gives about 45 dB on a real CNN's logits
NEGLIGIBLE_SNR_DB = 45.0
#: the bytes weight.bin spends per blob besides its data (a 64-byte record; data 64-byte aligned)
BLOB_RECORD, BLOB_ALIGN = 64, 64
#: calibration samples the per-tensor sensitivity is measured on / candidates are judged on
SENSITIVITY_SAMPLES = 16
GUARD_SAMPLES = 32


@dataclass(frozen=True)
class PolicyInputs:
    """What the policy measures with and judges by."""

    calibration: Dataset
    tolerance: "Tolerance"
    classifier: str | None
    workdir: Path
    #: tensors with fewer elements stay float whatever is measured (the profile's weight_threshold)
    min_elements: int = 0


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


class PolicyResult(NamedTuple):
    model: Any
    facts: dict[str, Any]


Sizer = Callable[[tuple[int, ...]], int]


def choose(fp_model: Any, compress: Callable[[Sequence[str], Sequence[str]], Any], stored_bytes: Sizer,
           inputs: PolicyInputs, fallback: tuple[str, Sizer] | None = None,
           progress_note: Callable[[str], None] | None = None, bias_correction: bool = False) -> PolicyResult:
    """Compress ``fp_model`` (an uncompressed MLModel) with ``compress(fp16_names, fallback_names)``
    — the coremltools pass keeping the first const tensors fp16 and storing the second in the
    fallback form — choosing the names by measurement. ``stored_bytes(shape)``: the bytes a tensor
    of that shape takes compressed; ``fallback``: (name, sizer) of the less lossy form a sensitive
    tensor is kept in (default fp16; a 4-bit model keeps them in 8 bits); ``bias_correction``: each
    candidate's biases absorb the mean output shift its compressed weights cause
    (:mod:`._coreml_bias_correction`) before it is judged."""
    fallback_name, fallback_bytes = fallback or ("fp16", lambda shape: blob_bytes(2 * int(np.prod(shape))))
    from ..validation.runtimes.coreml_emulator import CoreMLEmulatorSession
    from .int8_guard import guard_indices, pick, score

    t0 = time.perf_counter()
    work = Path(inputs.workdir) / "tensor_policy"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    idx = guard_indices(len(inputs.calibration))
    idx = idx[np.unique(np.linspace(0, len(idx) - 1, min(GUARD_SAMPLES, len(idx))).round().astype(int))]
    guard_data = Dataset({k: v[idx] for k, v in inputs.calibration.inputs.items()})
    sens_data = Dataset({k: v[::max(1, len(idx) // SENSITIVITY_SAMPLES)][:SENSITIVITY_SAMPLES]
                         for k, v in guard_data.inputs.items()})

    fp_path, all_path = work / "float.mlpackage", work / "all.mlpackage"
    fp_model.save(str(fp_path))
    everything = compress([], [])
    everything.save(str(all_path))
    weights = measure(fp_path, all_path, sens_data, stored_bytes, fallback_bytes, fallback_name,
                      correctable=bias_correction)
    reference = CoreMLEmulatorSession(fp_path).predict(guard_data)
    compressed_bytes = _weight_bytes(all_path)
    corrected: list[int] = []
    if bias_correction:
        from ._coreml_bias_correction import apply_shifts, bias_shifts, input_means

        means = input_means(fp_path, guard_data)

    def finish(model: Any, path: Path) -> Any:
        """Save ``model`` at ``path``, bias-corrected when asked; returns the model saved."""
        model.save(str(path))
        if bias_correction:
            model, n = apply_shifts(model, bias_shifts(fp_path, path, means))
            shutil.rmtree(path)
            model.save(str(path))
            corrected.append(n)
        return model

    eligible = [w for w in weights if _forced(w, inputs.min_elements) or w.sqnr_db < NEGLIGIBLE_SNR_DB]
    ranked = sorted(eligible, key=lambda w: (not _forced(w, inputs.min_elements),
                                             -w.harm / max(w.upgrade_bytes, 1)))
    trials: list[dict[str, Any]] = []
    built: list[tuple[Any, list[Weight], int]] = []
    seen: set[tuple[str, ...]] = set()
    # every float budget is tried (four at most): what ships depends on the model, never on how
    # busy the machine is
    for budget in FLOAT_BUDGETS:
        kept = _within(ranked, budget * compressed_bytes, inputs.min_elements)
        key = tuple(sorted(w.name for w in kept))
        if key in seen:
            continue
        seen.add(key)
        fp16 = [w.name for w in kept if _forced(w, inputs.min_elements) or w.keep_as == "fp16"]
        model = compress(fp16, [w.name for w in kept if w.name not in fp16]) if kept else everything
        path = work / f"candidate{len(built)}.mlpackage"
        model = finish(model, path)
        outputs = CoreMLEmulatorSession(path).predict(guard_data)
        trial = score(outputs, reference, inputs.tolerance, inputs.classifier, len(kept))
        trial = {"float_tensors": trial.pop("float_layers"), **trial}
        cost = _weight_bytes(path) - compressed_bytes
        trials.append({**trial, "float_budget": budget, "float_bytes": cost})
        built.append((model, kept, cost))
        if progress_note:
            progress_note(f"tensor policy: {len(kept)} tensors float (+{cost} bytes): {'meets' if trial['ok'] else 'misses'} the criteria")
        if trial["ok"]:
            break
    chosen, why = pick(trials, cost=lambda i: built[i][2])
    model, kept, cost = built[chosen]
    names = {w.name for w in kept}
    facts = {
        "fallback": fallback_name,
        "rule": (f"keep in {fallback_name} the tensors with the most layer error per byte saved, within a budget "
                 f"(a share of the compressed weight bytes: {', '.join(f'{b:g}' for b in FLOAT_BUDGETS)} in "
                 f"turn until the parity criteria are met on calibration inputs); tensors whose compression "
                 f"saves no bytes stay float; tensors whose layer keeps more than {NEGLIGIBLE_SNR_DB:g} dB SNR "
                 "compressed are always compressed"),
        "sensitivity": (f"each tensor compressed alone, its layer's output SNR on {len(sens_data)} calibration "
                        "samples in the ML Program emulator"),
        "tensors": len(weights),
        "kept_float": [{**_row(w, why_float(w, inputs.min_elements)),
                        "as": "fp16" if _forced(w, inputs.min_elements) else w.keep_as} for w in kept],
        "float_bytes": cost,
        "float_bytes_share": round(cost / max(compressed_bytes, 1), 5),
        "most_sensitive_compressed": [_row(w, "compressed") for w in
                                      sorted((w for w in weights if w.name not in names), key=lambda w: w.sqnr_db)[:5]],
        "met": bool(trials[chosen]["ok"]),
        "trials": trials,
        "pick": {"trial": chosen, "why": why},
        "samples": len(guard_data),
        **({"bias_correction": {
            "layers": corrected[chosen],
            "how": ("each compressed conv / linear's bias lowered by the mean output shift of its stored "
                    f"weights (dW . E[x], E[x] measured on {len(guard_data)} calibration samples in the float "
                    "program)")}} if bias_correction else {}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    shutil.rmtree(work, ignore_errors=True)
    return PolicyResult(model, facts)


def _forced(w: Weight, min_elements: int) -> bool:
    """Kept float whatever was measured: under the profile's weight_threshold, or no bytes saved."""
    return w.elements < min_elements or w.saved_bytes <= 0


def why_float(w: Weight, min_elements: int) -> str:
    if w.elements < min_elements:
        return f"fewer than weight_threshold ({min_elements}) elements"
    if w.saved_bytes <= 0:
        return (f"compressing it saves no bytes ({w.saved_bytes}): its compressed form's blobs (data, scales or "
                "tables, each with a 64-byte record, 64-byte aligned) take as much as fp16")
    return (f"compressing it alone drops its layer's output to {w.sqnr_db:.1f} dB SNR for "
            f"{w.upgrade_bytes} bytes saved")


def _row(w: Weight, why: str) -> dict[str, Any]:
    return {"tensor": w.name, "op": w.op, "elements": w.elements, "layer_sqnr_db": round(w.sqnr_db, 2),
            "bytes_saved_if_compressed": w.saved_bytes, "bytes_it_costs": w.upgrade_bytes, "why": why}


def _within(ranked: list[Weight], budget: float, min_elements: int) -> list[Weight]:
    """The ranked tensors that fit in ``budget`` bytes kept float, taken greedily in rank order
    (those under ``min_elements`` are always kept)."""
    kept, spent = [], 0
    for w in ranked:
        if _forced(w, min_elements) or spent + w.upgrade_bytes <= budget:
            kept.append(w)
            spent += 0 if _forced(w, min_elements) else w.upgrade_bytes
    return kept


def blob_bytes(*sizes: int) -> int:
    """What blobs of ``sizes`` data bytes take in weight.bin, records and alignment included."""
    return sum(BLOB_RECORD + -(-n // BLOB_ALIGN) * BLOB_ALIGN for n in sizes)


def _weight_bytes(package: Path) -> int:
    return sum(f.stat().st_size for f in Path(package).rglob("*") if f.is_file())


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
