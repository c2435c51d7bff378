"""Run an exporter in a child process (:func:`~edgeport.isolated_call.call_isolated`): a
converter that crashes the process or hangs becomes a :class:`ConversionError` for that target
instead of the end of the whole run. The child writes the artifact straight into the staging
folder; only the returned :class:`~edgeport.formats.Artifact` comes back through the pipe."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConversionError
from ..isolated_call import Failure, Isolated, call_isolated

if TYPE_CHECKING:  # pragma: no cover
    from ..formats import Artifact
    from .base import Exporter, ExportJob


def export_isolated(exporter: "Exporter", job: "ExportJob", out_dir: Path, stage: str = "export") -> "Artifact":
    """``exporter.export(job, out_dir)`` in a forked child, bounded by the plan's ``timeout_s``;
    a crash, hang or converter exception is a :class:`ConversionError` of that format, at the
    step it happened in (``stage`` when it happened outside every step)."""
    fmt = job.plan.format
    try:
        return call_isolated(exporter.export, (job, Path(out_dir)), float(job.plan.options.timeout_s),
                             "the converter", label=job.plan.target, converts=True, progress=job.progress)
    except Isolated as exc:
        message = exc.detail if isinstance(exc, Failure) else str(exc)
        raise ConversionError(fmt, exc.stage or stage, message) from None
