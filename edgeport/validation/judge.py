"""Judge an artifact: run it in its runtime(s) on the golden inputs and check every figure.

Validation never makes artifacts: it takes files on disk, the plan and the golden set (inputs and
the source model's outputs).
"""
from __future__ import annotations

import gzip
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..data import Dataset
from ..errors import EdgeportError, ModelLoadError, RuntimeLoadError, one_line
from ..precision import Precision
from ..progress import Progress
from ..targets.tolerances import TOLERANCES
from .inspect import inspect_artifact
from .layout import to_source_layout
from .latency import summarize
from .report import Accuracy, Check, Compression, Latency, OutputParity, Parity, Report, RuntimeRun, Size
from .runtimes import get_runtime
from .task_checks import judge_task
from .verdict import judge_outputs

if TYPE_CHECKING:  # pragma: no cover
    from ..formats import Artifact
    from ..targets.profile import Plan
    from .golden import Golden

#: how far a compressed artifact may drift from the original model on any output: the loosest row
#: of the tolerance table (4-bit palettization's)
COMPRESSION_TOLERANCE = TOLERANCES[Precision.LUT4]

#: seconds one latency measurement may take; a slow runtime (TF.js cpu backend on a CNN, the
#: reference kernels) gets fewer runs rather than minutes of timing — the report states the count
TIMING_BUDGET_S = 15.0


@dataclass(frozen=True)
class Subject:
    """What the artifact is judged as: the model's name, its task and which output classifies."""

    model: str
    task: str
    classifier_output: str | None
    golden_inputs: str = ""
    version: str = ""
    #: why the task is what it is: declared, or assumed from the outputs' shapes or the labels
    task_basis: str = ""

    def task_block(self) -> dict[str, Any]:
        """report.json's ``task``: the task judged, whether it was declared, why, and the output
        top-1 agreement is checked on (null: none)."""
        declared = not self.task_basis.startswith(("assumed", "not declared"))
        return {"name": self.task, "declared": declared, "basis": self.task_basis or None,
                "classifier_output": self.classifier_output}


def artifact_sizes(root: Path, files: Sequence[str]) -> tuple[int, int]:
    """(raw bytes, gzip bytes) over every file of the artifact — what a download transfers.
    Files are streamed through the compressor, never read whole."""
    raw = gz = 0
    for rel in files:
        counter = _ByteCounter()
        with open(root / rel, "rb") as f, gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6, mtime=0) as z:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                raw += len(chunk)
                z.write(chunk)
        gz += counter.n
    return raw, gz


class _ByteCounter:
    """A write-only file that only counts what is written to it."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def _artifact_names(names: Sequence[str], produced: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Reference output name -> the artifact's own name for it: the same name when the artifact
    has it (whatever order its runtime lists outputs in), else the output at the same position."""
    if all(n in produced for n in names):
        return {n: n for n in names}
    if len(produced) != len(names):
        raise RuntimeLoadError(f"artifact has {len(produced)} outputs, the source model {len(names)}")
    return dict(zip(names, produced))


def parity_of(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], plan: "Plan",
              subject: Subject) -> tuple[Parity, list[Check]]:
    """Per-output statistics with pass/fail against the plan's tolerance, and top-1 agreement."""
    tol = plan.tolerance
    stats, agreement, problems = judge_outputs(reference, actual, tol, subject.classifier_output)
    outs = []
    for st in stats:
        failing = any(p.startswith(f"{st.name}: ") and "agreement" not in p for p in problems)
        outs.append(OutputParity(**st.to_dict(), passed=not failing))
    value_problems = [p for p in problems if "agreement" not in p]
    samples = stats[0].samples if stats else 0
    detail = ("; ".join(value_problems) if value_problems else
              f"{len(outs)} output(s) within {plan.precision.value} tolerance "
              f"(worst cosine {min(s.cosine for s in stats):.6f}, sqnr {min(s.sqnr_db for s in stats):.1f} dB)")
    checks = [Check("parity", not value_problems, detail)]
    if agreement is not None:
        checks.append(Check("top1_agreement", agreement >= tol.top1_agreement_min,
                            f"{agreement:.4f} on {samples} samples (min {tol.top1_agreement_min})"))
    return Parity(samples=samples, top1_agreement=agreement, outputs=tuple(outs)), checks


def _vs_original(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], plan: "Plan",
                 subject: Subject) -> tuple[Parity, list[Check]]:
    """The compressed artifact against the *original* model, on every output: a check of its own
    with :data:`COMPRESSION_TOLERANCE` (compression is meant to change outputs a little; labelled
    data judges how much that costs, this catches an output it ruined, labels or not)."""
    loose = replace(plan, tolerance=COMPRESSION_TOLERANCE)
    parity, checks = parity_of(reference, actual, loose, subject)
    return parity, [Check(f"vs_original:{c.name}", c.passed,
                          c.detail.replace(f"{plan.precision.value} tolerance", "compression tolerance"))
                    for c in checks]


def run_runtime(name: str, artifact: "Artifact", plan: "Plan", golden: Dataset,
                progress: Progress) -> tuple[dict[str, np.ndarray], Latency, dict[str, Any]]:
    """Load the artifact in runtime ``name``, run every golden sample, time one of them — in a
    child process bounded by the plan's ``timeout_s``: a runtime that hangs (an ONNX ``Loop``
    with a huge trip count) or crashes is a :class:`RuntimeLoadError`, not a stuck release gate."""
    from ..isolated_call import call_isolated

    with progress.step(f"{name}: load and run {len(golden)} samples"):
        try:
            produced, timing, facts, specs = call_isolated(_measure, (name, artifact.path, plan, golden),
                                                           float(plan.options.timeout_s), name)
        except RuntimeLoadError:
            raise
        except EdgeportError as exc:
            raise RuntimeLoadError(str(exc)) from None
    artifact_names = _artifact_names(list(artifact.output_names), produced)
    aligned = {n: produced[key] for n, key in artifact_names.items()}
    return aligned, summarize(timing), {**facts, "_io": (specs, artifact_names, {k: v.dtype.name for k, v in produced.items()},
                                                         {k: list(v.shape[1:]) for k, v in produced.items()})}


def _measure(name: str, path: Path, plan: "Plan", golden: Dataset) -> tuple[Any, ...]:
    session = get_runtime(name).load(path, threads=plan.latency.threads, **plan.options.runtime_options())
    try:
        t0 = time.perf_counter()
        produced = session.predict(golden)
        per_sample = (time.perf_counter() - t0) / max(len(golden), 1)
        warmup, runs = _timing_runs(plan, per_sample)
        return produced, session.time(golden.sample(0), warmup, runs), session.facts(), session.input_specs
    finally:
        session.close()


def _timing_runs(plan: "Plan", per_sample_s: float) -> tuple[int, int]:
    """The profile's warm-up and runs, reduced (to no fewer than 5 runs) when they would take
    longer than :data:`TIMING_BUDGET_S` at the speed seen while predicting."""
    warmup, runs = plan.latency.warmup, plan.latency.runs
    if per_sample_s * (warmup + runs) <= TIMING_BUDGET_S:
        return warmup, runs
    fit = int(TIMING_BUDGET_S / max(per_sample_s, 1e-9))
    return min(warmup, max(1, fit // 10)), min(runs, max(5, fit))


def _ops_check(artifact: "Artifact", plan: "Plan") -> tuple[Any, Check | None]:
    try:
        ops = inspect_artifact(artifact.format, artifact.path, plan)
    except EdgeportError:
        raise
    except Exception as exc:  # a parser's own error on a damaged file
        raise RuntimeLoadError(f"cannot read the ops of {artifact.entry}: {type(exc).__name__}: "
                               f"{one_line(exc)}") from exc
    if ops.blocking and ops.unsupported:
        return ops, Check("ops", False, f"not supported by {plan.target}: {', '.join(sorted(set(ops.unsupported)))}")
    if ops.used:
        extra = f"; would fall back to CPU: {', '.join(sorted(set(ops.unsupported)))}" if ops.unsupported else ""
        return ops, Check("ops", True, f"{len(set(ops.used))} op kinds, all supported by the runtime{extra}")
    return ops, None


def _accuracy(golden: "Golden", actual: Mapping[str, np.ndarray],
              plan: "Plan") -> tuple[Accuracy | None, list[Check], Accuracy | None]:
    """Task metrics of every labelled output, always against the original model's outputs.

    With compression the artifact may lose the compression budget plus the precision's
    conversion tolerance; the compressed torch model against the original is judged on its own
    (checks ``compression:*``, within ``[budgets]``) and returned third."""
    if not golden.data.has_labels:
        return None, [], None
    try:
        labels = golden.data.labels_for(list(golden.reference))
    except ModelLoadError as exc:  # checked at export; only a rewritten bundle gets here
        return None, [Check("labels", False, str(exc))], None
    if golden.converted_reference is None:
        return (*judge_task(golden.reference, actual, labels, plan.tolerance), None)
    tol, budget = plan.tolerance, plan.budgets
    total = replace(tol, accuracy_drop_max=round(tol.accuracy_drop_max + budget.accuracy_drop_max, 6),
                    regression_mae_increase_max=round(tol.regression_mae_increase_max
                                                      + budget.regression_mae_increase_max, 6))
    accuracy, checks = judge_task(golden.reference, actual, labels, total)
    checks = [Check(c.name, c.passed, c.detail + " — compression budget and conversion tolerance together")
              for c in checks]
    own = replace(tol, accuracy_drop_max=budget.accuracy_drop_max,
                  regression_mae_increase_max=budget.regression_mae_increase_max)
    compressed, cchecks = judge_task(golden.reference, golden.converted_reference, labels, own)
    checks += [Check(f"compression:{c.name}", c.passed, c.detail + " (compressed torch model vs the original)")
               for c in cchecks]
    return accuracy, checks, compressed


def _with_estimates(latency: Latency, artifact: "Artifact", plan: "Plan", progress: Progress) -> Latency:
    """The plan's devices' latency estimates (:mod:`.estimate`) added to the measured latency."""
    if not plan.device.estimate:
        return latency
    from .estimate import estimate

    with progress.step(f"estimate latency on {', '.join(plan.device.estimate)}"):
        found = estimate(artifact.format, artifact.path, plan.precision.value, plan.device.estimate)
    return replace(latency, estimates=tuple(e.to_dict() for e in found))


def _budget_checks(plan: "Plan", size: Size, latency: Latency) -> list[Check]:
    b, checks = plan.budgets, []
    if b.max_artifact_bytes:
        checks.append(Check("size_budget", size.artifact_bytes <= b.max_artifact_bytes,
                            f"{size.artifact_bytes} bytes (max {b.max_artifact_bytes})"))
    if b.max_p50_ms and b.p50_device:
        checks.append(_device_budget(b.p50_device, b.max_p50_ms, latency))
    elif b.max_p50_ms and latency.p50_ms is not None:
        checks.append(Check("latency_budget", latency.p50_ms <= b.max_p50_ms,
                            f"p50 {latency.p50_ms:.3f} ms (max {b.max_p50_ms}) — {latency.where}"))
    return checks


def _device_budget(device: str, limit: float, latency: Latency) -> Check:
    """``max_p50_ms`` against a device's CPU estimate: its 80 % upper bound (its p50 when the
    estimate is a published figure with no interval); no estimate fails the check, saying so."""
    cpu = [e for e in latency.estimates if e.get("device") == device and "cpu" in str(e.get("runtime"))]
    usable = [e for e in cpu if e.get("p50_ms") is not None]
    if not usable:
        why = cpu[0].get("basis") if cpu else "the device is not in [device] estimate"
        return Check("latency_budget", False, f"no CPU latency estimate for {device} ({why}); max {limit} ms")
    e = usable[0]
    bound = e.get("high_ms") if e.get("high_ms") is not None else e["p50_ms"]
    return Check("latency_budget", bound <= limit,
                 f"{device} {e.get('runtime')} estimate, grade {e.get('grade')}: p50 {e['p50_ms']} ms, upper bound "
                 f"{bound} ms (max {limit}) — estimated, not measured")


def evaluate(artifact: "Artifact", plan: "Plan", golden: "Golden", subject: Subject, *,
             compression: Compression | None = None, progress: Progress | None = None,
             timings: Mapping[str, float] | None = None) -> Report:
    """Every check of one artifact. With compression, element-wise parity is judged against the
    compressed torch model's outputs (``golden.converted_reference``) and, as a check of its own,
    against the original; accuracy is always judged against the original."""
    progress = progress or Progress(False)
    timings = dict(timings or {})
    parity_ref = golden.converted_reference if golden.converted_reference is not None else golden.reference
    t0 = time.perf_counter()
    ops, ops_check = _ops_check(artifact, plan)
    checks = [ops_check] if ops_check else []

    actual, latency, runtime_facts = run_runtime(plan.runtime, artifact, plan, golden.data, progress)
    latency = _with_estimates(latency, artifact, plan, progress)
    io_facts = runtime_facts.pop("_io")
    actual, layouts = to_source_layout(parity_ref, actual)
    parity, pchecks = parity_of(parity_ref, actual, plan, subject)
    reference_name = "compressed source model" if golden.converted_reference is not None else "source model"
    vs_original = None
    if golden.converted_reference is not None:
        vs_original, vchecks = _vs_original(golden.reference, actual, plan, subject)
        pchecks += vchecks
    parity = Parity(parity.samples, parity.top1_agreement, parity.outputs, reference=reference_name,
                    runtime=plan.runtime, golden_inputs=subject.golden_inputs, vs_original=vs_original,
                    runtime_facts={**runtime_facts, "output_layout": layouts})
    checks += pchecks
    accuracy, achecks, compressed_accuracy = _accuracy(golden, actual, plan)
    checks += achecks
    if compression is not None:
        compression = replace(compression, accuracy=compressed_accuracy,
                              budget={"accuracy_drop_max": plan.budgets.accuracy_drop_max,
                                      "regression_mae_increase_max": plan.budgets.regression_mae_increase_max})

    extra_runs = []
    for name in plan.extra_runtimes:
        try:
            out_x, lat_x, _ = run_runtime(name, artifact, plan, golden.data, progress)  # facts: the main run's
            out_x, _ = to_source_layout(parity_ref, out_x)
        except Exception as exc:  # a runtime that cannot run the artifact is a failed check
            checks.append(Check(f"runtime:{name}", False, f"{type(exc).__name__}: {one_line(exc)}"))
            extra_runs.append(RuntimeRun(name, error=one_line(exc)))
            continue
        px, cx = parity_of(parity_ref, out_x, plan, subject)
        checks += [Check(f"{c.name}:{name}", c.passed, c.detail) for c in cx]
        extra_runs.append(RuntimeRun(name, parity=px, latency=lat_x))
    timings["validate"] = round(time.perf_counter() - t0, 3)

    files = artifact.files()
    raw, gz = artifact_sizes(artifact.root, files)
    size = Size(artifact_bytes=raw, fp32_bytes=artifact.fp32_bytes, gzip_bytes=gz, files=len(files))
    checks += _budget_checks(plan, size, latency)
    return Report(edgeport_version=subject.version, model=subject.model, target=plan.target, format=plan.format,
                  runtime=plan.runtime, precision=plan.precision.value, sparsity=plan.sparsity, size=size,
                  parity=parity, accuracy=accuracy, latency=latency, ops=ops, checks=tuple(checks),
                  runtimes=tuple(extra_runs), precision_facts=dict(artifact.facts),
                  compression=compression, device=plan.device.to_dict(), timings_s=timings,
                  io=_io_block(golden, parity_ref, io_facts, layouts), artifact_outputs=actual,
                  task=subject.task_block())


def _io_block(golden: "Golden", reference: Mapping[str, np.ndarray], io_facts: tuple[Any, ...],
              layouts: Mapping[str, str]) -> dict[str, Any]:
    """Per input and output: the source's name, per-sample shape and dtype beside the artifact's."""
    specs, out_names, out_dtypes, out_shapes = io_facts
    by_name = {s.name: s for s in specs}
    inputs = []
    for i, (name, arr) in enumerate(golden.data.inputs.items()):
        spec = by_name.get(name) or (specs[i] if i < len(specs) else None)
        inputs.append({"name": name, "shape": list(arr.shape[1:]), "dtype": arr.dtype.name,
                       "artifact_name": spec.name if spec else None,
                       "artifact_shape": list(spec.shape[1:]) if spec else None,
                       "artifact_dtype": spec.dtype if spec else None})
    outputs = []
    for name, ref in reference.items():
        key = out_names.get(name, name)
        outputs.append({"name": name, "shape": list(ref.shape[1:]), "dtype": ref.dtype.name, "artifact_name": key,
                        "artifact_shape": out_shapes.get(key), "artifact_dtype": out_dtypes.get(key),
                        "layout": layouts.get(name)})
    return {"inputs": inputs, "outputs": outputs}
