"""Static inspection of an artifact: which ops it uses, and which a target would not take.

One module per format, each exposing ``inspect(path, plan) -> OpsReport``. They read the saved
artifact (never the exporter's state), so they work on artifacts nobody here made.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ...targets.profile import Plan

_MODULES = {"onnx": "onnx", "tflite": "tflite", "coreml": "coreml", "tfjs": "tfjs"}


@dataclass
class OpsReport:
    """``used``: op type names; ``unsupported``: ops the target's runtime/delegate would not take
    (for Android: ops falling back from NNAPI to the CPU). ``blocking`` unsupported ops fail the
    export (e.g. an op TF.js cannot run); non-blocking ones are only reported (NNAPI fallback)."""

    used: list[str]
    unsupported: list[str] = field(default_factory=list)
    blocking: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"used": sorted(set(self.used)), "unsupported": sorted(set(self.unsupported)), **self.details}


def inspect_artifact(fmt: str, path: Path, plan: "Plan | None" = None) -> OpsReport:
    if fmt not in _MODULES:
        return OpsReport(used=[])
    try:
        module = importlib.import_module(f"{__name__}.{_MODULES[fmt]}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edgeport"):
            return OpsReport(used=[], details={"note": f"no op inspection for {fmt} yet"})
        raise
    return module.inspect(Path(path), plan)
