"""Which TF.js weights to store as uint8 in an int8 export, chosen by measurement.

TF.js stores a quantized weight as uint8 with one affine range (min, scale) per *tensor*. A
batch-norm-folded kernel whose output channels have very different ranges loses most of the
small channels' precision to that one range: on EfficientNet-Lite0 the rule "every tensor of 1024
elements and more" agreed only 0.891 top-1 with fp32 (cosine 0.974) although no tensor's own
SQNR was below 27 dB. What matters is the error each *output channel* gets relative to its own
weights, so each tensor's harm is the mean, over its output channels, of the channel's uint8
noise-to-signal ratio (a per-channel figure for convolution, depthwise and matrix-multiply
kernels; the whole tensor's for biases and other vectors).

The policy stores as float16 the tensors with the most harm per byte within a budget (a share of
the uint8-eligible weight elements), and the guard judges each candidate end to end in TF.js (the
validation's Node runtime) against the float32 model on calibration inputs — never evaluation
data — by the parity check's criteria; a miss tries the next budget, the cheapest candidate
meeting them ships, else the best measured (``int8_guard.pick``).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..data import Dataset
from . import _tfjs_convert as conv

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

#: float16 budgets tried in turn, as a share of the elements that could be stored as uint8
FLOAT16_BUDGETS = (0.005, 0.01, 0.02, 0.04, 0.08)
#: the weight input of each kernel op (TF.js graph op name -> input position)
_KERNEL_INPUT = {"Conv2D": 1, "_FusedConv2D": 1, "DepthwiseConv2dNative": 1, "FusedDepthwiseConv2dNative": 1,
                 "MatMul": 1, "_FusedMatMul": 1, "BatchMatMulV2": 1, "Conv2DBackpropInput": 1}


@dataclass(frozen=True)
class PolicyInputs:
    calibration: Dataset
    tolerance: "Tolerance"
    classifier: str | None
    workdir: Path
    timeout_s: float


def uint8_harm(arr: np.ndarray, op: str) -> float:
    """Mean per-output-channel noise-to-signal ratio of ``arr`` stored as TF.js uint8 (one affine
    range, nudged so zero is exact, as tensorflowjs quantizes)."""
    a = np.asarray(arr, dtype=np.float64)
    lo, hi = min(float(a.min()), 0.0), max(float(a.max()), 0.0)
    if hi == lo:
        return 0.0
    scale = (hi - lo) / 255
    zero = round(-lo / scale)
    noise = (np.clip(np.round(a / scale) + zero, 0, 255) - zero) * scale - a
    if op and a.ndim >= 2:
        channels = a.shape[-2] * a.shape[-1] if "Depthwise" in op else a.shape[-1]
        sig = np.sum(a.reshape(-1, channels) ** 2, axis=0)
        err = np.sum(noise.reshape(-1, channels) ** 2, axis=0)
        live = sig > 0
        return float(np.mean(err[live] / sig[live])) if live.any() else 0.0
    total = float(np.sum(a ** 2))
    return float(np.sum(noise ** 2)) / total if total > 0 else 0.0


def kernel_ops(doc: dict[str, Any]) -> dict[str, str]:
    """Weight name -> the kernel op reading it as its filter (absent for biases and the rest)."""
    out: dict[str, str] = {}
    for node in doc["modelTopology"].get("node", []):
        pos = _KERNEL_INPUT.get(node.get("op", ""))
        inputs = node.get("input", [])
        if pos is not None and pos < len(inputs):
            out[inputs[pos]] = node["op"]
    return out


def rank(probe: Path) -> list[dict[str, Any]]:
    """The uint8-eligible weights of the float32 probe, most harm per byte first."""
    import json

    doc = json.loads(probe.read_text())
    ops = kernel_ops(doc)
    rows = []
    for w, arr in conv.read_weights(probe):
        if w["dtype"] == "float32" and arr.size >= conv.UINT8_MIN_ELEMENTS:
            harm = uint8_harm(arr, ops.get(w["name"], ""))
            rows.append({"name": w["name"], "elements": int(arr.size), "op": ops.get(w["name"], "other"),
                         "harm": harm})
    return sorted(rows, key=lambda r: -r["harm"] / r["elements"])


def qmap_keeping(ranked: list[dict[str, Any]], kept: set[str]) -> dict[str, Any]:
    """The dtype map storing the ranked weights as uint8 except ``kept`` (float16, like the rest)."""
    big = sorted(conv.pattern(r["name"]) for r in ranked if r["name"] not in kept)
    return {"uint8": big, "float16": True} if big else {"float16": True}


def choose(probe: Path, inputs: PolicyInputs, note: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """The int8 model.json (in a work folder) and the facts of how its uint8 tensors were chosen."""
    from ..validation.runtimes import get_runtime
    from .int8_guard import guard_indices, pick, score

    t0 = time.perf_counter()
    work = Path(inputs.workdir) / "tfjs_tensor_policy"
    if work.exists():
        shutil.rmtree(work)
    ranked = rank(probe)
    eligible = sum(r["elements"] for r in ranked)
    idx = guard_indices(len(inputs.calibration))
    runtime = get_runtime("tfjs-node")

    def outputs(model_json: Path) -> dict[str, np.ndarray]:
        session = runtime.load(model_json, threads=1, timeout_s=inputs.timeout_s)
        try:
            feed = Dataset({s.name: np.asarray(inputs.calibration.inputs[s.name])[idx] for s in session.input_specs})
            return session.predict(feed)
        finally:
            session.close()

    reference = outputs(probe)
    budgets = (0.0, *FLOAT16_BUDGETS)
    trials: list[dict[str, Any]] = []
    built: list[tuple[Path, list[dict[str, Any]]]] = []
    for budget in budgets:
        kept, used = [], 0
        for r in ranked:
            if used + r["elements"] <= budget * eligible:
                kept.append(r)
                used += r["elements"]
        if built and len(kept) == len(built[-1][1]):
            continue  # the budget admits no further tensor
        path = conv.requantize(probe, work / f"candidate{len(built)}", qmap_keeping(ranked, {r["name"] for r in kept}),
                               "int8")
        trial = score(outputs(path), reference, inputs.tolerance, inputs.classifier, len(kept))
        trial = {"float16_tensors": trial.pop("float_layers"), **trial, "float16_budget": budget,
                 "float16_elements": used}
        trials.append(trial)
        built.append((path, kept))
        if note:
            note(f"uint8 tensor policy: {len(kept)} tensors float16 (+{used} bytes): "
                 f"{'meets' if trial['ok'] else 'misses'} the criteria")
        if trial["ok"]:
            break
    chosen, why = pick(trials, cost=lambda i: trials[i]["float16_elements"])
    path, kept = built[chosen]
    names = {r["name"] for r in kept}
    facts = {
        "rule": ("store as float16 the weights with the most per-channel uint8 error per byte, within a budget "
                 f"(a share of the uint8-eligible elements: 0, {', '.join(f'{b:g}' for b in FLOAT16_BUDGETS)} in "
                 "turn until the parity criteria are met in TF.js on calibration inputs)"),
        "judged_in": f"tfjs-node on {len(idx)} calibration samples against the float32 model",
        "kept_float16": [{"name": r["name"], "op": r["op"], "elements": r["elements"],
                          "uint8_noise_to_signal": round(r["harm"], 6)} for r in kept],
        "float16_bytes": sum(r["elements"] for r in kept),
        "most_harmed_uint8": [{"name": r["name"], "op": r["op"], "uint8_noise_to_signal": round(r["harm"], 6)}
                              for r in ranked if r["name"] not in names][:5],
        "met": bool(trials[chosen]["ok"]),
        "trials": trials,
        "pick": {"trial": chosen, "why": why},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return path, facts
