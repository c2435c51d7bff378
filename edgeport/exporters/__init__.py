"""Exporters, one module per format, registered by name and imported only when used."""
from __future__ import annotations

from ..registry import LazyRegistry
from .base import Artifact, Exporter, ExportJob

# the module is imported on first use: it pulls in its converter's heavy library
EXPORTERS = LazyRegistry("format", {
    "onnx": "edgeport.exporters.onnx:OnnxExporter",
    "tflite": "edgeport.exporters.tflite:TFLiteExporter",
    "coreml": "edgeport.exporters.coreml:CoreMLExporter",
    "tfjs": "edgeport.exporters.tfjs:TFJSExporter",
})


def register_exporter(fmt: str, target: str) -> None:
    """Add an exporter as ``"package.module:Class"``; a second registration of a format is refused."""
    EXPORTERS.register(fmt, target)


def known_formats() -> list[str]:
    return EXPORTERS.names()


def get_exporter(fmt: str) -> Exporter:
    return EXPORTERS.load(fmt)()


__all__ = ["Artifact", "Exporter", "ExportJob", "EXPORTERS", "get_exporter", "known_formats",
           "register_exporter"]
