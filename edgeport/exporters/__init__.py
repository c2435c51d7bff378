"""Exporters, one module per format, named by the format records and imported only when used."""
from __future__ import annotations

from ..formats import get_format, load_exporter
from .base import Exporter, ExportJob


def get_exporter(fmt: str) -> Exporter:
    return load_exporter(get_format(fmt))


__all__ = ["Exporter", "ExportJob", "get_exporter"]
