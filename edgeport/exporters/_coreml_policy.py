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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import numpy as np

from ..data import Dataset
from ._coreml_sensitivity import Sizer, Weight, blob_bytes, measure

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

#: float budgets tried in turn: the bytes kept float, as a share of the all-compressed weight bytes
FLOAT_BUDGETS = (0.001, 0.005, 0.02, 0.08)
#: a tensor whose layer keeps an output SNR above this (dB) compressed stays compressed whatever
#: it saves: fp16 storage itself gives about 45 dB on a real CNN's logits
NEGLIGIBLE_SNR_DB = 45.0
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


class PolicyResult(NamedTuple):
    model: Any
    facts: dict[str, Any]


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
    corrector = None
    if bias_correction:
        from ._coreml_bias_correction import BiasCorrection

        corrector = BiasCorrection(fp_path, guard_data)
    corrected: list[int] = []   # layers bias-corrected, per candidate

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
        model.save(str(path))
        if corrector:
            model, layers = corrector.apply(model, path)
            corrected.append(layers)
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
        **({"bias_correction": corrector.facts(corrected[chosen])} if corrector else {}),
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


def _weight_bytes(package: Path) -> int:
    return sum(f.stat().st_size for f in Path(package).rglob("*") if f.is_file())
