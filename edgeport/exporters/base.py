"""What every exporter takes and returns."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..formats import Artifact
    from ..precision import Precision
    from ..progress import Progress
    from ..source import ModelSource
    from ..targets.profile import Plan


@dataclass
class ExportJob:
    """One export: the (already compressed) torch module, the plan, calibration data.

    ``module`` is None when the source is an ONNX file (``source.onnx_path``). ``zeros`` is the
    share of prunable weights the compression steps left exactly zero (what sparse storage uses).
    """

    source: "ModelSource"
    module: Any | None
    plan: "Plan"
    calibration: "Dataset | None"
    progress: "Progress"
    workdir: Path  # scratch space, deleted after the export
    #: scratch shared by every target of one export call (the source's ONNX file is made once
    #: there); None: use ``workdir``
    shared_dir: Path | None = None
    zeros: float = 0.0

    @property
    def precision(self) -> "Precision":
        return self.plan.precision

    @property
    def options(self) -> Any:
        """The plan's typed options for this format (e.g. :class:`~edgeport.formats.OnnxOptions`)."""
        return self.plan.options


class Exporter(ABC):
    """One per format. Heavy libraries are imported inside ``export``, never at module import.
    The precisions an exporter makes are declared in its format record."""

    @abstractmethod
    def export(self, job: ExportJob, out_dir: Path) -> "Artifact":
        """Write the artifact's files under ``out_dir`` and describe them."""
