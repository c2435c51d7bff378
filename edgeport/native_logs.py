"""Capture what native libraries print straight to file descriptor 2.

TensorFlow's converter and LiteRT's delegates log from C++ (``INFO: Created TensorFlow Lite
XNNPACK delegate``, quantizer settings...). Python's ``sys.stderr`` never sees it, so it cannot
be silenced there; it would interleave with edgeport's progress lines. We keep it, and put it in
the error message when the native call fails.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator


class Captured:
    text: str = ""

    def tail(self, lines: int = 3) -> str:
        return " | ".join(ln.strip() for ln in self.text.strip().splitlines()[-lines:])


@contextmanager
def native_stderr() -> Iterator[Captured]:
    """Redirect fd 2 to a temporary file for the duration; the text ends up in ``.text``."""
    captured = Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): capture nothing
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode("utf-8", "replace")
