"""plan -> compress -> export -> validate -> bundle, and the re-validation of a bundle."""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .data import Dataset, check_against, load_npz
from .errors import ConversionError, EdgeportError, ModelLoadError, RuntimeLoadError
from .exporters import ExportJob, get_exporter
from .progress import Progress
from .source import ModelSource, load_source
from .targets.profile import TARGET_NAMES, Plan, load_profile, resolve_plan
from .validation.bundle import (GOLDEN, REPORT, read_golden, read_manifest, staging, verify_files,
                                write_golden, write_manifest)
from .validation.judge import evaluate
from .validation.report import Check, Report

#: golden inputs kept in a bundle are capped at this many raw bytes (first samples kept)
GOLDEN_MAX_BYTES = 48 * 1024 * 1024
RANDOM_SAMPLES = 32


@dataclass(frozen=True)
class ExportResult:
    bundle: Path
    report: Report


def expand_targets(targets: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in targets:
        for name in (TARGET_NAMES if t == "all" else (t,)):
            if name not in out:
                out.append(name)
    return out


def golden_inputs(source: ModelSource) -> tuple[Dataset, str]:
    """The inputs parity is judged on: the user's/sample's data, else seeded random inputs."""
    if source.eval_data is not None:
        data = source.eval_data
        per_sample = sum(v[0].nbytes for v in data.inputs.values()) or 1
        return data.take(max(1, GOLDEN_MAX_BYTES // per_sample)), data.description or "eval data"
    rng = np.random.default_rng(0)
    inputs = {}
    for spec, ex in zip(source.input_specs, source.example_inputs):
        shape = (RANDOM_SAMPLES,) + tuple(spec.shape[1:])
        if ex.dtype.kind in "iu":
            inputs[spec.name] = rng.integers(0, max(int(ex.max()), 1) + 1, size=shape).astype(ex.dtype)
        elif ex.dtype.kind == "b":
            inputs[spec.name] = np.ones(shape, dtype=ex.dtype)
        else:
            inputs[spec.name] = rng.standard_normal(shape).astype(ex.dtype)
    return Dataset(inputs, None, "random"), (f"{RANDOM_SAMPLES} seeded random inputs — pass --data "
                                             "with real inputs: random ones hide real divergence")


def prepare_source(model: str | ModelSource, data: str | Path | Dataset | None) -> ModelSource:
    source = load_source(model) if isinstance(model, str) else model
    if data is None:
        return source
    ds = data if isinstance(data, Dataset) else load_npz(data, source.input_names)
    check_against(ds, [(s.name, s.shape, s.dtype) for s in source.input_specs])
    return source.with_data(ds)


def _bundle_name(model: str, target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}-{target}")


def export(model: str | ModelSource, targets: Sequence[str], *, precision: str | None = None,
           sparsity: float | None = None, pruning_scope: str | None = None,
           data: str | Path | Dataset | None = None, out_dir: str | Path = "out",
           progress: Progress | None = None) -> list[ExportResult]:
    """Export ``model`` for each target, validate each artifact and write one bundle per target.

    Every input problem (target, precision, model, data) is found before anything is written.
    A check that fails does not raise: the bundle is written and its report says ``passed: false``.
    """
    progress = progress or Progress(False)
    names = expand_targets(targets)
    plans = [resolve_plan(load_profile(t), precision, sparsity, pruning_scope) for t in names]
    with progress.step(f"load model {model if isinstance(model, str) else model.name}"):
        source = prepare_source(model, data)
    golden, golden_desc = golden_inputs(source)
    with progress.step(f"reference outputs on {len(golden)} samples"):
        reference = source.reference(golden)
    with tempfile.TemporaryDirectory(prefix="edgeport-shared-") as shared:
        return [_export_one(source, plan, golden, golden_desc, reference, Path(out_dir), progress, Path(shared))
                for plan in plans]


def _export_one(source: ModelSource, plan: Plan, golden: Dataset, golden_desc: str,
                reference: dict[str, np.ndarray], out_dir: Path, progress: Progress,
                shared_dir: Path | None = None) -> ExportResult:
    from .compression import prune_magnitude, recalibrate_batchnorm

    timings: dict[str, float] = {}
    module, pruning, converted_ref = source.module, None, None
    if plan.sparsity > 0:
        if module is None:
            raise ModelLoadError("pruning needs a PyTorch source (module or .pt2), not an ONNX file")
        with progress.step(f"prune {plan.sparsity:.0%} ({plan.pruning_scope} scope)"):
            module, stats = prune_magnitude(module, plan.sparsity, plan.pruning_scope)
            calib = source.calibration_data or source.eval_data
            bn_layers = recalibrate_batchnorm(module, _torch_batches(source, calib)) if calib else 0
            converted_ref = source.reference(golden, module)
        pruning = {**stats.to_dict(), "batchnorm_recalibrated_layers": bn_layers,
                   "note": "unstructured zeros: smaller only where the format stores sparse weights or "
                           "the transfer is compressed (see size.gzip_bytes); no speed-up on CPU runtimes"}
    final = out_dir / _bundle_name(source.name, plan.target)
    exporter = get_exporter(plan.format)
    with staging(final) as stage, tempfile.TemporaryDirectory(prefix="edgeport-") as tmp:
        job = ExportJob(source=source, module=module, plan=plan,
                        calibration=source.calibration_data or source.eval_data, progress=progress,
                        workdir=Path(tmp), shared_dir=shared_dir)
        t0 = time.perf_counter()
        try:
            artifact = exporter.export(job, stage)
        except EdgeportError:
            raise
        except Exception as exc:  # a converter's own crash, reported with its stage and format
            raise ConversionError(plan.format, "export", f"{type(exc).__name__}: {exc}") from exc
        timings["export"] = round(time.perf_counter() - t0, 3)
        fp32_bytes = _fp32_bytes(exporter, job, artifact, progress)
        write_golden(stage / GOLDEN, golden, reference, converted_ref)
        report = evaluate(model=source.name, version=__version__, root=stage, entry=artifact.entry,
                          files=artifact.files(), plan=plan, golden=golden, reference=reference,
                          task=source.task, fp32_bytes=fp32_bytes, converted_reference=converted_ref,
                          facts={**artifact.facts, "golden_inputs": golden_desc}, pruning=pruning,
                          progress=progress, timings=timings)
        (stage / REPORT).write_text(report.to_json())
        write_manifest(stage, {
            "edgeport_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": source.name,
            "source": {"digest": source.digest(), "task": source.task, "description": source.description,
                       "inputs": [s.__dict__ for s in source.input_specs],
                       "outputs": list(source.output_names)},
            "target": plan.target,
            "plan": plan.to_dict(),
            "artifact": {"format": artifact.format, "entry": artifact.entry, "precision": artifact.precision,
                         "files": artifact.files(), "fp32_bytes": fp32_bytes},
        })
    return ExportResult(final, report)


def _torch_batches(source: ModelSource, data: Dataset, batch: int = 32) -> list[tuple[Any, ...]]:
    import torch

    data = data.take(512)
    step = batch if int(source.extra.get("reference_batch", batch)) > 1 else 1
    return [tuple(torch.from_numpy(np.ascontiguousarray(data.inputs[n][i:i + step])) for n in source.input_names)
            for i in range(0, len(data), step)]


def _fp32_bytes(exporter: Any, job: ExportJob, artifact: Any, progress: Progress) -> int:
    """Bytes of the same model in this format at fp32: the denominator of the size ratio."""
    if artifact.precision == "fp32":
        return artifact.total_bytes()
    if artifact.facts.get("fp32_bytes"):
        return int(artifact.facts.pop("fp32_bytes"))
    from dataclasses import replace

    ref_dir = job.workdir / "fp32-reference"
    # the denominator is the dense, unpruned model at fp32: pruning's savings count in the ratio
    dense = replace(job, module=job.source.module if job.source.module is not None else job.module,
                    plan=replace(job.plan, precision="fp32", sparsity=0.0))
    with progress.step(f"{job.plan.format}: fp32 reference export (for the size ratio)"):
        ref = exporter.export(dense, ref_dir)
    return ref.total_bytes()


# ------------------------------------------------------------------------------------------------
def validate_bundle(bundle: str | Path, progress: Progress | None = None) -> Report:
    """Re-hash every file, re-run the artifact on the golden inputs, re-apply tolerances/budgets."""
    progress = progress or Progress(False)
    root = Path(bundle)
    manifest = read_manifest(root)
    try:
        plan = Plan.from_dict(manifest["plan"])
        art = manifest["artifact"]
        outputs = manifest["source"]["outputs"]
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(f"{root / 'manifest.json'} lacks {exc}: not an edgeport bundle") from exc
    problems = verify_files(root, manifest)
    integrity = Check("integrity", not problems,
                      "; ".join(problems) if problems else f"{len(manifest['files'])} files match their sha256")
    try:
        golden = read_golden(root / GOLDEN, outputs)
    except Exception as exc:
        return _failed_report(manifest, plan, [integrity, Check("golden", False, f"cannot read {GOLDEN}: {exc}")])
    try:
        report = evaluate(model=manifest["model"], version=__version__, root=root, entry=art["entry"],
                          files=art["files"], plan=plan, golden=golden.data, reference=golden.reference,
                          task=manifest["source"]["task"], fp32_bytes=art.get("fp32_bytes"),
                          converted_reference=golden.converted_reference, progress=progress)
    except (RuntimeLoadError, ConversionError, ValueError) as exc:
        return _failed_report(manifest, plan, [integrity, Check("rerun", False, f"{art['entry']}: {exc}")])
    stored = _stored_report(root) if not problems else {}
    return Report(**{**report.__dict__, "checks": (integrity,) + report.checks,
                     "precision_facts": stored.get("precision_facts") or {}, "pruning": stored.get("pruning")})


def _stored_report(root: Path) -> dict[str, Any]:
    """The report written at export (trusted only once its hash matched)."""
    import json

    try:
        return json.loads((root / REPORT).read_text())
    except (OSError, ValueError):
        return {}


def _failed_report(manifest: dict[str, Any], plan: Plan, checks: list[Check]) -> Report:
    return Report(edgeport_version=__version__, model=manifest.get("model", "?"), target=plan.target,
                  format=plan.format, runtime=plan.runtime, precision=plan.precision, sparsity=plan.sparsity,
                  size={}, parity={}, accuracy=None, latency={}, ops={}, checks=tuple(checks))


# ------------------------------------------------------------------------------------------------
def run_artifact(artifact: str | Path, data: str | Path, out: str | Path | None = None,
                 runtime: str | None = None, threads: int = 1) -> dict[str, np.ndarray]:
    """Run any artifact on an npz of inputs (first axis = samples); write outputs to ``out``."""
    from .validation.runtimes import get_runtime, runtime_for_path

    path = Path(artifact)
    if not path.exists():
        raise ModelLoadError(f"no such artifact: {path}")
    session = get_runtime(runtime or runtime_for_path(path)).load(path, threads=threads)
    try:
        ds = load_npz(data, [s.name for s in session.input_specs])
        check_against(ds, [(s.name, s.shape, s.dtype) for s in session.input_specs])
        outputs = session.predict(ds)
    finally:
        session.close()
    if out is not None:
        out_path = Path(out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".partial.npz")
        np.savez_compressed(tmp, **outputs)
        tmp.replace(out_path)
    return outputs
