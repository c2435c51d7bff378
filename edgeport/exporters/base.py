"""What every exporter takes and returns."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..progress import Progress
    from ..source import ModelSource
    from ..targets.profile import Plan


@dataclass(frozen=True)
class Artifact:
    """The files an exporter wrote, under ``root``; ``entry`` is the file/folder a runtime loads.

    ``facts`` records what the precision really means in this format, e.g.
    ``{"weights": "int8 per-channel", "activations": "int8 (QDQ)", "compute": "int8"}``;
    it is copied into the report so a user is not misled about what was stored or computed.
    """

    format: str
    root: Path
    entry: str
    precision: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / self.entry

    def files(self) -> list[str]:
        """Relative paths (posix) of every file that belongs to the artifact."""
        p = self.path
        if p.is_dir():
            return sorted(f.relative_to(self.root).as_posix() for f in p.rglob("*") if f.is_file())
        if self.format == "tfjs":  # model.json + shards beside it
            return sorted(f.relative_to(self.root).as_posix() for f in p.parent.rglob("*") if f.is_file())
        return [self.entry]

    def total_bytes(self) -> int:
        return sum((self.root / f).stat().st_size for f in self.files())


@dataclass
class ExportJob:
    """One export: the (already compressed) torch module, the plan, calibration data.

    ``module`` is None when the source is an ONNX file (``source.onnx_path``).
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

    @property
    def precision(self) -> str:
        return self.plan.precision


class Exporter(ABC):
    """One per format. Heavy libraries are imported inside ``export``, never at module import."""

    format: str = ""
    #: precisions this exporter can produce (a profile may allow fewer)
    precisions: tuple[str, ...] = ()

    @abstractmethod
    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        """Write the artifact's files under ``out_dir`` and describe them."""
