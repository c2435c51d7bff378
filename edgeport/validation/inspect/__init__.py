"""Static inspection of an artifact: which ops it uses, and which a target would not take.

One module per format (named by its :class:`~edgeport.formats.Format` record's ``inspector``),
each exposing ``inspect(path, plan) -> Ops``. They read the saved artifact (never the exporter's
state), so they work on artifacts nobody here made.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import EdgeportError, RuntimeLoadError, one_line
from ...formats import get_format
from ...registry import load_ref
from ..report import Ops as OpsReport  # the inspectors' name for the report's ops block

if TYPE_CHECKING:  # pragma: no cover
    from ...targets.profile import Plan

__all__ = ["OpsReport", "inspect_artifact"]


def inspect_artifact(fmt: str, path: Path, plan: "Plan | None" = None) -> OpsReport:
    ref = get_format(fmt).inspector
    if ref is None:
        return OpsReport(details={"note": f"no op inspection for {fmt}"})
    inspect = load_ref(ref, "op inspector")
    try:
        return inspect(Path(path), plan)
    except EdgeportError:
        raise
    except Exception as exc:  # a damaged or crafted file the parser chokes on is a named error
        raise RuntimeLoadError(f"cannot read the ops of {Path(path).name}: {type(exc).__name__}: "
                               f"{one_line(exc)}") from exc
