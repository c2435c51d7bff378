"""Judge an artifact: run it in its runtime(s) on the golden inputs and check every figure.

Validation never makes artifacts: it takes files on disk, the plan and the reference outputs.
"""
from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import Dataset
from ..errors import EdgeportError, RuntimeLoadError
from ..progress import Progress
from ..targets.profile import Plan
from .inspect import inspect_artifact
from .latency import summarize
from .metrics import ErrorStats, top1_accuracy, top1_agreement
from .report import Check, Report
from .runtimes import get_runtime


def artifact_sizes(root: Path, files: Sequence[str]) -> tuple[int, int]:
    """(raw bytes, gzip bytes) over every file of the artifact — what a download transfers."""
    raw = gz = 0
    for rel in files:
        data = (root / rel).read_bytes()
        raw += len(data)
        gz += len(gzip.compress(data, compresslevel=6, mtime=0))
    return raw, gz


def _aligned(names: Sequence[str], produced: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs keyed by the reference's names: by name when they match, else by position."""
    if all(n in produced for n in names):
        return {n: produced[n] for n in names}
    values = list(produced.values())
    if len(values) != len(names):
        raise ValueError(f"artifact has {len(values)} outputs, the source model {len(names)}")
    return dict(zip(names, values))


def parity_block(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], plan: Plan,
                 task: str) -> tuple[dict[str, Any], list[Check], str]:
    """Per-output statistics with pass/fail against the plan's tolerance, and top-1 agreement."""
    tol = plan.tolerance
    outs, checks, problems = [], [], []
    for name, ref in reference.items():
        st = ErrorStats.from_arrays(name, ref, actual[name])
        ok = (st.cosine >= tol.cosine_min and st.sqnr_db >= tol.sqnr_db_min
              and st.max_abs_rel <= tol.max_abs_rel_max)
        outs.append({**st.to_dict(), "passed": bool(ok)})
        if not ok:
            problems.append(f"{name}: cosine {st.cosine:.6f} (min {tol.cosine_min}), sqnr {st.sqnr_db:.1f} dB "
                            f"(min {tol.sqnr_db_min}), max_abs_rel {st.max_abs_rel:.4g} (max {tol.max_abs_rel_max})")
    first = next(iter(reference))
    agreement = top1_agreement(reference[first], actual[first]) if task == "classification" else None
    samples = len(reference[first])
    detail = ("; ".join(problems) if problems else
              f"{len(outs)} output(s) within {plan.precision} tolerance "
              f"(worst cosine {min(o['cosine'] for o in outs):.6f}, sqnr {min(o['sqnr_db'] for o in outs):.1f} dB)")
    checks.append(Check("parity", not problems, detail))
    if agreement is not None:
        checks.append(Check("top1_agreement", agreement >= tol.top1_agreement_min,
                            f"{agreement:.4f} on {samples} samples (min {tol.top1_agreement_min})"))
    block = {"samples": samples, "top1_agreement": agreement, "outputs": outs,
             "cosine_min": min(o["cosine_min"] for o in outs)}
    return block, checks, detail


def run_runtime(name: str, path: Path, plan: Plan, golden: Dataset, progress: Progress,
                output_names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load ``path`` in runtime ``name``, run every golden sample, time one of them."""
    runtime = get_runtime(name)
    with progress.step(f"{name}: load and run {len(golden)} samples"):
        session = runtime.load(path, threads=plan.latency.threads, **_runtime_options(plan))
        try:
            t0 = time.perf_counter()
            produced = session.predict(golden)
            per_sample = (time.perf_counter() - t0) / max(len(golden), 1)
            warmup, runs = _timing_runs(plan, per_sample)
            timing = session.time(golden.sample(0), warmup, runs)
        finally:
            session.close()
    return _aligned(output_names, produced), summarize(timing)


#: seconds one latency measurement may take; a slow runtime (TF.js cpu backend on a CNN, the
#: reference kernels) gets fewer runs rather than minutes of timing — the report states the count
TIMING_BUDGET_S = 15.0


def _timing_runs(plan: Plan, per_sample_s: float) -> tuple[int, int]:
    """The profile's warm-up and runs, reduced (to no fewer than 5 runs) when they would take
    longer than :data:`TIMING_BUDGET_S` at the speed seen while predicting."""
    warmup, runs = plan.latency.warmup, plan.latency.runs
    if per_sample_s * (warmup + runs) <= TIMING_BUDGET_S:
        return warmup, runs
    fit = int(TIMING_BUDGET_S / max(per_sample_s, 1e-9))
    return min(warmup, max(1, fit // 10)), min(runs, max(5, fit))


def _runtime_options(plan: Plan) -> dict[str, Any]:
    return {k: v for k, v in plan.options.items() if k in ("timeout_s",)}


def evaluate(*, model: str, version: str, root: Path, entry: str, files: Sequence[str], plan: Plan,
             golden: Dataset, reference: dict[str, np.ndarray], task: str, fp32_bytes: int | None,
             converted_reference: dict[str, np.ndarray] | None = None,
             facts: dict[str, Any] | None = None, pruning: dict[str, Any] | None = None,
             progress: Progress | None = None, timings: dict[str, float] | None = None) -> Report:
    """Every check of one artifact. ``converted_reference`` (the pruned torch model's outputs)
    is what element-wise parity is judged against when the plan prunes; accuracy is always
    judged against the original ``reference``."""
    progress = progress or Progress(False)
    timings = dict(timings or {})
    path = root / entry
    names = list(reference)
    parity_ref = converted_reference if converted_reference is not None else reference
    checks: list[Check] = []

    t0 = time.perf_counter()
    try:
        ops = inspect_artifact(plan.format, path, plan)
    except EdgeportError:
        raise
    except Exception as exc:  # a parser's own error on a damaged file
        raise RuntimeLoadError(f"cannot read the ops of {entry}: {type(exc).__name__}: {exc}") from exc
    if ops.blocking and ops.unsupported:
        checks.append(Check("ops", False, f"not supported by {plan.target}: {', '.join(sorted(set(ops.unsupported)))}"))
    elif ops.used:
        extra = f"; would fall back to CPU: {', '.join(sorted(set(ops.unsupported)))}" if ops.unsupported else ""
        checks.append(Check("ops", True, f"{len(set(ops.used))} op kinds, all supported by the runtime{extra}"))

    actual, latency = run_runtime(plan.runtime, path, plan, golden, progress, names)
    parity, pchecks, _ = parity_block(parity_ref, actual, plan, task)
    parity["reference"] = "pruned source model" if converted_reference is not None else "source model"
    parity["runtime"] = plan.runtime
    if converted_reference is not None:
        parity["vs_original"] = parity_block(reference, actual, plan, task)[0]
    checks.extend(pchecks)

    accuracy = None
    first = names[0]
    if golden.labels is not None and task == "classification":
        ref_acc = top1_accuracy(reference[first], golden.labels)
        art_acc = top1_accuracy(actual[first], golden.labels)
        drop = ref_acc - art_acc
        accuracy = {"metric": "top1", "reference": round(ref_acc, 6), "artifact": round(art_acc, 6),
                    "drop": round(drop, 6), "samples": len(golden)}
        checks.append(Check("accuracy_drop", drop <= plan.tolerance.accuracy_drop_max + 1e-12,
                            f"{drop * 100:+.2f} pt ({ref_acc:.4f} -> {art_acc:.4f}; max "
                            f"{plan.tolerance.accuracy_drop_max * 100:.2f} pt)"))

    extra_runs = []
    for name in plan.extra_runtimes:
        try:
            out_x, lat_x = run_runtime(name, path, plan, golden, progress, names)
        except Exception as exc:  # a runtime that cannot run the artifact is a failed check
            checks.append(Check(f"runtime:{name}", False, f"{type(exc).__name__}: {exc}"))
            extra_runs.append({"runtime": name, "error": str(exc)})
            continue
        px, cx, _ = parity_block(parity_ref, out_x, plan, task)
        for c in cx:
            checks.append(Check(f"{c.name}:{name}", c.passed, c.detail))
        extra_runs.append({"runtime": name, "parity": px, "latency": lat_x})
    timings["validate"] = round(time.perf_counter() - t0, 3)

    raw, gz = artifact_sizes(root, files)
    ratio = round(raw / fp32_bytes, 4) if fp32_bytes else None
    size = {"artifact_bytes": raw, "fp32_bytes": fp32_bytes, "ratio": ratio, "gzip_bytes": gz,
            "gzip_ratio": round(gz / fp32_bytes, 4) if fp32_bytes else None, "files": len(files)}
    b = plan.budgets
    if b.max_artifact_bytes:
        checks.append(Check("size_budget", raw <= b.max_artifact_bytes, f"{raw} bytes (max {b.max_artifact_bytes})"))
    if b.max_p50_ms and latency.get("p50_ms") is not None:
        checks.append(Check("latency_budget", latency["p50_ms"] <= b.max_p50_ms,
                            f"p50 {latency['p50_ms']:.3f} ms (max {b.max_p50_ms}) — {latency['where']}"))

    return Report(edgeport_version=version, model=model, target=plan.target, format=plan.format,
                  runtime=plan.runtime, precision=plan.precision, sparsity=plan.sparsity, size=size,
                  parity=parity, accuracy=accuracy, latency=latency, ops=ops.to_dict(),
                  checks=tuple(checks), runtimes=tuple(extra_runs), precision_facts=dict(facts or {}),
                  pruning=pruning, device=dict(plan.device), timings_s=timings)
