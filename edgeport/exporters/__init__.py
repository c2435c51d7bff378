"""Exporters, one module per format, registered by name and imported only when used."""
from __future__ import annotations

import importlib

from ..errors import ConfigError, UnknownNameError
from .base import Artifact, Exporter, ExportJob

# format -> "module:Class"; the module is imported on first use (it pulls in heavy libraries)
_REGISTRY: dict[str, str] = {
    "onnx": "edgeport.exporters.onnx:OnnxExporter",
    "tflite": "edgeport.exporters.tflite:TFLiteExporter",
    "coreml": "edgeport.exporters.coreml:CoreMLExporter",
    "tfjs": "edgeport.exporters.tfjs:TFJSExporter",
}


def register_exporter(fmt: str, target: str) -> None:
    """Add an exporter as ``"package.module:Class"``; a second registration of a format is refused."""
    if fmt in _REGISTRY:
        raise ConfigError(f"an exporter for format {fmt!r} is already registered ({_REGISTRY[fmt]})")
    _REGISTRY[fmt] = target


def known_formats() -> list[str]:
    return list(_REGISTRY)


def get_exporter(fmt: str) -> Exporter:
    if fmt not in _REGISTRY:
        raise UnknownNameError("format", fmt, known_formats())
    mod_name, _, cls_name = _REGISTRY[fmt].partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edgeport"):
            raise ConfigError(f"the {fmt} exporter is not available yet in this version") from exc
        raise
    return getattr(module, cls_name)()


__all__ = ["Artifact", "Exporter", "ExportJob", "get_exporter", "known_formats", "register_exporter"]
