"""edgeport: compress and convert a trained PyTorch model for an edge target, then prove the
artifact in the target's own runtime and ship it as a verifiable bundle.

The public API is re-exported lazily: ``import edgeport`` stays light (no torch, no TensorFlow),
and each name is the real object on first use, so ``help(edgeport.export)`` shows its signature.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (ConfigError, ConversionError, EdgeportError, MissingDependencyError, ModelLoadError,
                     RuntimeLoadError, UnknownNameError)
from .version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .formats import Artifact, Format, register_format
    from .compression.request import CompressionRequest
    from .intermediates import conversion_cache
    from .targets.devices import estimating_on
    from .pipeline import ExportResult, export
    from .recheck import run_artifact as run, validate_bundle as validate
    from .crosscheck import compare
    from .source import ModelSource
    from .targets.profile import load_profile
    from .validation.report import Report

#: public name -> "module:attribute" it is imported from on first use
_LAZY = {
    "export": "edgeport.pipeline:export",
    "compare": "edgeport.crosscheck:compare",
    "validate": "edgeport.recheck:validate_bundle",
    "run": "edgeport.recheck:run_artifact",
    "ExportResult": "edgeport.pipeline:ExportResult",
    "CompressionRequest": "edgeport.compression.request:CompressionRequest",
    "conversion_cache": "edgeport.intermediates:conversion_cache",
    "estimating_on": "edgeport.targets.devices:estimating_on",
    "load_profile": "edgeport.targets.profile:load_profile",
    "ModelSource": "edgeport.source:ModelSource",
    "Report": "edgeport.validation.report:Report",
    "Artifact": "edgeport.formats:Artifact",
    "Format": "edgeport.formats:Format",
    "register_format": "edgeport.formats:register_format",
}


def __getattr__(name: str) -> Any:
    ref = _LAZY.get(name)
    if ref is None:
        raise AttributeError(f"module 'edgeport' has no attribute {name!r}")
    module, _, attr = ref.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Artifact", "CompressionRequest", "ConfigError", "ConversionError", "EdgeportError", "ExportResult", "Format",
           "MissingDependencyError", "ModelLoadError", "ModelSource", "Report", "RuntimeLoadError",
           "UnknownNameError", "__version__", "compare", "conversion_cache", "estimating_on", "export", "load_profile", "register_format", "run", "validate"]
