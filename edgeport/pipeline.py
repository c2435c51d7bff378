"""plan -> compress -> export -> validate -> bundle, and the re-validation of a bundle."""
from __future__ import annotations

import contextlib
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .compress_source import compressed_module
from .compression.request import CompressionRequest
from .search import Auto, candidates, is_auto, search, splits
from .strict import to_table
from .intermediates import active_cache
from .data import Dataset
from .errors import ConfigError, ConversionError, EdgeportError, ModelLoadError
from .exporters import ExportJob, get_exporter
from .exporters.failures import explain
from .exporters.isolation import export_isolated
from .progress import Progress
from .size_reference import fp32_bytes
from .source import ModelSource
from .source_data import checked_data, golden_inputs, prepare_source, reference_outputs
from .target_log import log_path, target_log
from .targets.devices import requested_devices
from .targets.profile import TARGET_NAMES, Plan, load_profile, resolve_plan, with_devices
from .validation.bundle import GOLDEN, REPORT, write_manifest
from .validation.html import write_index_html, write_report_html
from .validation.golden import Golden, write_golden
from .validation.staging import staging, sweep_stale
from .validation.judge import Subject, evaluate
from .validation.report import Report
from .validation.task_kinds import assumed_task, check_labels
from .version import __version__


@dataclass(frozen=True)
class ExportResult:
    """One target of an export: its bundle and report, or the error that stopped it."""

    target: str
    bundle: Path | None
    report: Report | None
    error: EdgeportError | None = None
    seconds: float = 0.0
    #: the converters' and runtimes' output for this target (``OUT/<model>-<target>.log``)
    log: Path | None = None

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


@dataclass(frozen=True)
class _Call:
    """What every target of one export call shares."""

    source: ModelSource
    golden: Golden
    golden_desc: str
    out_dir: Path
    progress: Progress
    shared_dir: Path
    #: compressed modules (and their step reports) by plan, made once per call
    compressed: dict[Any, Any] = field(default_factory=dict)
    #: ``--precision auto``: the candidates of each searched target, and what to search for
    searches: dict[str, Any] = field(default_factory=dict)
    auto: Any = None
    #: write report.html into bundles (the auto search's trial bundles, thrown away, need none)
    pages: bool = True


def expand_targets(targets: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in targets:
        for name in (TARGET_NAMES if t == "all" else (t,)):
            if name not in out:
                out.append(name)
    return out


def _bundle_name(model: str, target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}-{target}")


def resolve_plans(targets: Sequence[str], precision: "str | Auto | None" = None,
                  compression: CompressionRequest | None = None) -> list[Plan]:
    """Every target's plan, checked before any work: a bad name, profile or override is an error
    here, with nothing written."""
    names = expand_targets(targets)
    if not names:
        raise ConfigError("no target given; see 'edgeport targets'")
    profiles = [load_profile(t) for t in names]
    plans = [resolve_plan(prof, None if is_auto(precision, prof) else precision, compression) for prof in profiles]
    seen: dict[str, str] = {}
    for name, plan in zip(names, plans):
        if plan.target in seen:
            raise ConfigError(f"targets {seen[plan.target]} and {name} are both named {plan.target!r}: "
                              "their bundles would overwrite each other")
        seen[plan.target] = name
    return plans


def export(model: str | ModelSource, targets: Sequence[str], *, precision: "str | Auto | None" = None,
           compression: CompressionRequest | None = None,
           data: str | Path | Dataset | None = None, train_data: str | Path | Dataset | None = None,
           out_dir: str | Path = "out", progress: Progress | None = None) -> list[ExportResult]:
    """Export ``model`` for each target, validate each artifact and write one bundle per target.
    Inside an ``estimating_on(devices)`` block every report also has latency estimates for them.

    Every input problem (target, precision, model, data) is raised before anything is written.
    After that every target runs: one that cannot be produced becomes an :class:`ExportResult`
    with its ``error`` (and no bundle); a check that fails does not raise either — the bundle is
    written and its report says ``passed: false``.

    ``precision="auto"`` (or an :class:`~edgeport.search.Auto` with the objective, whether to try
    compression, and a time bound; or a profile's ``default_precision = "auto"``) judges the
    target's candidates and bundles the pick (see :mod:`edgeport.search`).

    ``compression`` (e.g. ``CompressionRequest(prune_channels=0.5, recover="kd")``) changes the
    profiles' compression steps; ``train_data`` is what a recovery step trains on (default: a sample
    model's own train split) — the eval ``data`` never is.

    A model's task is declared in its :class:`ModelSource` (``source.with_task("regression")``);
    undeclared, a first output shaped ``[N, C]`` (C >= 2) is judged as a classifier and the report
    says it assumed so.

    Intermediate conversions (the source's ONNX file, the TensorFlow SavedModel, the fp32 size
    reference) live in a temporary folder for this call, or under :func:`conversion_cache`.
    """
    progress = progress or Progress(False)
    auto = precision if isinstance(precision, Auto) else Auto()
    plans = [with_devices(p, requested_devices()) for p in resolve_plans(targets, precision, compression)]
    auto_targets = {t for t, plan in zip(expand_targets(targets), plans) if is_auto(precision, load_profile(t))}
    with progress.step(f"load model {model if isinstance(model, str) else model.name}"):
        source = prepare_source(model, data)
        if source.tensorflow is not None and (any(plan.compression for plan in plans) or
                                              (auto_targets and auto.compress)):
            raise ConfigError("compression steps (pruning, low-rank, distillation) work on a PyTorch module and do "
                              "not apply to a TensorFlow source; export it without them (precision still applies)")
        if any(plan.compression for plan in plans) and source.module is None:
            raise ModelLoadError("compression needs a PyTorch source (module or .pt2), not an ONNX file")
        if train_data is not None:
            source = replace(source, train_data=checked_data(source, train_data))
        elif any(s.kind == "distill" for plan in plans for s in plan.compression) and source.train_data is None:
            raise ConfigError("recovery (--recover) needs train data: pass --train-data FILE.npz (inputs named "
                              "like the model's, labels optional); the eval data (--data) is never trained on")
    searches = {}
    for name, plan in zip(expand_targets(targets), plans):
        if name in auto_targets:
            options = candidates(load_profile(name), auto, compression, source.train_data is not None)
            searches[plan.target] = [replace(c, plan=with_devices(c.plan, requested_devices())) for c in options]
    golden, golden_desc = golden_inputs(source)
    with progress.step(f"reference outputs on {len(golden)} samples"):
        reference = reference_outputs(source, golden)
    source = _settled_task(source, {name: out.shape[1:] for name, out in reference.items()})
    # each labelled output's kind follows from its shape: labels that fit none are refused here
    check_labels(source.eval_data, {name: out.shape[1:] for name, out in reference.items()})
    if train_data is not None:  # the user's train labels, checked like the eval labels
        check_labels(source.training_data(), {name: out.shape[1:] for name, out in reference.items()})
    results = []
    if Path(out_dir).is_dir():
        sweep_stale(out_dir)  # what killed exports left behind
    with contextlib.ExitStack() as stack:
        cache_dir = active_cache()
        shared = (cache_dir if cache_dir is not None else
                  Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeport-shared-"))))
        shared.mkdir(parents=True, exist_ok=True)
        call = _Call(source, Golden(golden, reference, None), golden_desc, Path(out_dir), progress, shared,
                     searches=searches, auto=auto)
        for plan in plans:
            results.append(_run_target(call, plan))
    if len(results) > 1:  # a page linking every target's report.html
        write_index_html(Path(out_dir), source.name, results)
    return results


def _settled_task(source: ModelSource, output_shapes: dict[str, tuple[int, ...]]) -> ModelSource:
    """The source with its task decided and the basis stated: declared, or assumed from the shape
    of its first output (``task_kinds.assumed_task``)."""
    if source.task != "generic":
        return source if source.task_basis else replace(source, task_basis="declared by the model source")
    task, basis = assumed_task(source.output_names, output_shapes)
    return replace(source, task=task, task_basis=basis)


def _golden_part(call: _Call, indices: np.ndarray, desc: str) -> _Call:
    g = call.golden
    part = Golden(g.data.subset(indices), {k: v[indices] for k, v in g.reference.items()}, None)
    return replace(call, golden=part, golden_desc=desc)


def _auto_one(call: _Call, target: str) -> tuple[Path, Report]:
    """``--precision auto`` for one target: every candidate judged on the selection split, the
    pick exported again and judged on the held-out rest (its bundle's golden set). A pick that
    fails on the held-out split gives way to the next fitting candidate (the baseline last)."""
    options = call.searches[target]
    selection, judgment = splits(len(call.golden.data))
    n = len(call.golden.data)
    chose = _golden_part(call, selection, f"{call.golden_desc} — selection split: {len(selection)} of {n} samples")
    with tempfile.TemporaryDirectory(prefix="edgeport-auto-") as tmp:
        trial = replace(chose, out_dir=Path(tmp), pages=False)
        ranked, block = search(call.auto, options, lambda c: _export_one(trial, c.plan)[1], call.progress)
    block.update(budget={**to_table(ranked[0].plan.budgets)}, selection_samples=int(len(selection)),
                 judgment_samples=int(len(judgment)),
                 splits=f"a seeded {len(selection)} of the {n} golden samples chose; the other {len(judgment)} "
                        "judge the pick (this bundle's golden.npz)")
    judged = _golden_part(call, judgment, f"{call.golden_desc} — judgment split: {len(judgment)} of {n} samples "
                                          "(held out from the auto search)")
    fell_back: list[dict[str, str]] = []
    for i, chosen in enumerate(ranked):
        call.progress.note(f"auto: {target} picks {chosen.label} — {block['why'] if not i else 'the next that fits'}")
        if fell_back:
            block.update(pick=chosen.label, held_out_failures=list(fell_back))
        bundle, report = _export_one(judged, chosen.plan, auto=block)
        if report.passed or i == len(ranked) - 1:
            return bundle, report
        why = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.passed)
        call.progress.note(f"auto: {chosen.label} fit the selection split but fails on the held-out one ({why})")
        fell_back.append({"label": chosen.label, "why": why})
    raise AssertionError("unreachable: the ranking always holds the baseline")


def _run_target(call: _Call, plan: Plan) -> ExportResult:
    """One target, everything printed meanwhile kept in its log file beside the bundle: its
    bundle and report, or the one-line error that stopped it (the others still run)."""
    log = log_path(call.out_dir, _bundle_name(call.source.name, plan.target))
    t0 = time.perf_counter()
    with target_log(log, call.progress) as stream:
        shown = "auto" if plan.target in call.searches else plan.precision.value
        call.progress.header(f"{call.source.name} -> {plan.target} ({plan.format}, {shown})")
        try:
            bundle, report = (_auto_one(call, plan.target) if plan.target in call.searches
                              else _export_one(call, plan))
            return ExportResult(plan.target, bundle, report, seconds=time.perf_counter() - t0, log=log)
        except Exception as exc:  # this target could not be produced
            err = explain(exc, plan, str(log))
            detail = getattr(exc, "detail", None) or "".join(traceback.format_exception(exc))
            print(f"[edgeport] {plan.target} could not be produced; what the converter said:\n{detail}",
                  file=stream)
            stage = err.stage if isinstance(err, ConversionError) else type(err).__name__
            call.progress.note(f"{plan.target}: failed at {stage}; full log: {log}")
            return ExportResult(plan.target, None, None, err, time.perf_counter() - t0, log=log)


def _export_one(call: _Call, plan: Plan, auto: dict[str, Any] | None = None) -> tuple[Path, Report]:
    source, progress = call.source, call.progress
    module, golden, compression, zeros = compressed_module(source, call.golden, plan, progress, call.compressed)
    final = call.out_dir / _bundle_name(source.name, plan.target)
    exporter = get_exporter(plan.format)
    with staging(final) as stage, tempfile.TemporaryDirectory(prefix="edgeport-") as tmp:
        job = ExportJob(source=source, module=module, plan=plan,
                        calibration=source.calibration_data or source.eval_data, progress=progress,
                        workdir=Path(tmp), shared_dir=call.shared_dir, zeros=zeros)
        t0 = time.perf_counter()
        artifact = export_isolated(exporter, job, stage)
        timings = {"export": round(time.perf_counter() - t0, 3)}
        # an exporter's own fp32 pass (TFLite, TF.js) is of the module it was given: the ratio's
        # denominator only when nothing compressed that module
        if artifact.fp32_bytes is None or plan.compression:
            artifact = replace(artifact, fp32_bytes=fp32_bytes(exporter, job, artifact, progress))
        write_golden(stage / GOLDEN, golden.data, golden.reference, golden.converted_reference)
        subject = Subject(source.name, source.task, source.classifier_output, call.golden_desc, __version__,
                          source.task_basis)
        report = evaluate(artifact, plan, golden, subject, compression=compression, progress=progress,
                          timings=timings)
        if auto is not None:
            report = replace(report, auto=auto)
        (stage / REPORT).write_text(report.to_json())
        if call.pages:  # listed and hashed like report.json
            write_report_html(stage, report, golden, artifact.files())
        write_manifest(stage, {
            "edgeport_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": source.name,
            "source": {"digest": source.digest(), "task": source.task, "task_basis": source.task_basis,
                       "description": source.description,
                       "inputs": [s.__dict__ for s in source.input_specs],
                       "outputs": list(source.output_names), **source.framework_info()},
            "target": plan.target,
            "plan": plan.to_dict(),
            "artifact": {"format": artifact.format, "entry": artifact.entry, "precision": artifact.precision.value,
                         "files": artifact.files(), "fp32_bytes": artifact.fp32_bytes},
        })
    return final, report
