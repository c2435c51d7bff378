"""The denominator of the size ratio: the same model in the same format at fp32, dense."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from .exporters import ExportJob
from .exporters.isolation import export_isolated
from .formats import Artifact
from .precision import Precision
from .progress import Progress


def fp32_bytes(exporter: Any, job: ExportJob, artifact: Artifact, progress: Progress) -> int:
    """Bytes of the same model in this format at fp32: the denominator of the size ratio. Kept in
    the call's cache folder per format, options and dense model, so each precision of one model
    (with a shared ``cache_dir``) makes the fp32 reference once."""
    dense_module = job.source.module if job.source.module is not None else job.module
    memo = _fp32_memo(job, dense_module)
    if artifact.precision is Precision.FP32 and not job.plan.compression:
        size = artifact.total_bytes()
    elif memo is not None and memo.is_file():
        return int(memo.read_text())
    else:
        ref_dir = job.workdir / "fp32-reference"
        # the denominator is the dense, uncompressed model at fp32: compression's savings count in the ratio
        dense = replace(job, module=dense_module, plan=replace(job.plan, precision=Precision.FP32, compression=()),
                        zeros=0.0)
        with progress.step(f"{job.plan.format}: fp32 reference export (for the size ratio)"):
            size = export_isolated(exporter, dense, ref_dir, "fp32 reference export").total_bytes()
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(str(size))
    return size


def _fp32_memo(job: ExportJob, dense_module: Any) -> Path | None:
    if job.shared_dir is None:
        return None
    if dense_module is not None:
        from .exporters.torch_to_onnx import module_digest

        model = module_digest(dense_module, job.source.input_specs, job.source.output_names)
    else:
        model = job.source.digest()
    key = hashlib.sha256(repr((job.plan.format, model, job.plan.options)).encode()).hexdigest()[:24]
    return job.shared_dir / "fp32-bytes" / key
