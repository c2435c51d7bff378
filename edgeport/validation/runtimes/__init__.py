"""Runtimes, one module each, named by the format records (``edgeport.formats``) and imported
only when used."""
from __future__ import annotations

from pathlib import Path

from ...formats import format_for_path, load_runtime, runtime_names
from .base import Runtime, Session, Timing


def known_runtimes() -> list[str]:
    return runtime_names()


def get_runtime(name: str) -> Runtime:
    return load_runtime(name)


def runtime_for_path(path: Path) -> str:
    """The default runtime for an artifact on disk, told by its name."""
    return format_for_path(Path(path)).default_runtime


__all__ = ["Runtime", "Session", "Timing", "get_runtime", "known_runtimes", "runtime_for_path"]
