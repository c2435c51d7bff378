"""Where an export keeps its intermediate conversions: a temporary folder per call, or the
caller's folder for every export inside a :func:`conversion_cache` block."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

_CACHE_DIR: ContextVar[Path | None] = ContextVar("edgeport_conversion_cache", default=None)


@contextlib.contextmanager
def conversion_cache(folder: str | Path) -> Iterator[Path]:
    """Within the block, exports keep their intermediate conversions (the source's ONNX file, the
    TensorFlow SavedModel, the fp32 size reference) in ``folder`` under content digests, so calls
    that share it — each precision of one model, say — convert once::

        with edgeport.conversion_cache("cache"):
            for p in ("fp32", "fp16", "int8"):
                edgeport.export(model, ["android-tflite"], precision=p, out_dir=f"out/{p}")

    The folder is the caller's: it is created if missing and never deleted."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    token = _CACHE_DIR.set(path)
    try:
        yield path
    finally:
        _CACHE_DIR.reset(token)


def active_cache() -> Path | None:
    """The folder of the innermost :func:`conversion_cache` block, if any."""
    return _CACHE_DIR.get()
