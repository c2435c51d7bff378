"""Exporting to CoreML in tests without the whole pipeline: the exporter alone, and every
precision of a sample run once in the emulator."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeport.exporters import ExportJob, get_exporter
from edgeport.progress import SILENT
from edgeport.targets.profile import load_profile, resolve_plan, with_options
from edgeport.validation.runtimes import get_runtime

PRECISIONS = ("fp32", "fp16", "int8", "lut8", "lut4")


def export_coreml(src, precision: str, out: Path, module=None, sparsity: float | None = None, **options):
    """The ios-coreml exporter on ``src`` (or ``module``, pruned to ``sparsity`` zeros) with the
    profile's plan plus ``options``."""
    plan = resolve_plan(load_profile("ios-coreml"), precision=precision)
    if options:
        plan = with_options(plan, **options)
    job = ExportJob(src, src.module if module is None else module, plan, src.calibration_data, SILENT, out,
                    zeros=sparsity or 0.0)
    return get_exporter("coreml").export(job, out)


def run_every_precision(src, tmp_path_factory, tag: str) -> tuple[Any, dict[str, tuple]]:
    """(torch reference logits, {precision: (artifact, emulator session, logits)}) on the eval set."""
    ref = src.reference(src.eval_data)["logits"]
    runs = {}
    for p in PRECISIONS:
        art = export_coreml(src, p, tmp_path_factory.mktemp(f"{tag}_{p}"))
        sess = get_runtime("coreml-emulator").load(art.path)
        runs[p] = (art, sess, sess.predict(src.eval_data)["logits"])
    return ref, runs
