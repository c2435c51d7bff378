"""Capture what native libraries print straight to file descriptor 2.

TensorFlow's converter and LiteRT's delegates log from C++ (``INFO: Created TensorFlow Lite
XNNPACK delegate``, quantizer settings...). Python's ``sys.stderr`` never sees it, so it cannot
be silenced there; it would interleave with edgeport's progress lines. We keep it, put it in the
error message when the native call fails, and leave it in the target's log file when one is open
(:mod:`edgeport.target_log`).
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

#: the target's log file while one holds fd 2 (forked converter children inherit it)
_log_path: str | None = None


class Captured:
    """What a native call wrote to fd 2 (filled in when the block ends)."""

    text: str = ""


def keep_in_log(text: str) -> None:
    """Write ``text`` into the open target log (fd 2 while one is open); without one, drop it."""
    if _log_path is None or not text:
        return
    try:
        sys.stderr.flush()
        os.write(2, (text if text.endswith("\n") else text + "\n").encode("utf-8", "replace"))
    except (OSError, ValueError):
        pass


def current_log() -> str | None:
    """The target log that holds fd 2 now, if any."""
    return _log_path


def set_log_path(path: str | None) -> str | None:
    """Say which target log holds fd 2 now (None: none); returns the one said before."""
    global _log_path
    before, _log_path = _log_path, path
    return before


@contextmanager
def native_stderr() -> Iterator[Captured]:
    """Keep what is written to fd 2 for the duration off the terminal; the text ends up in
    ``.text``. While a target log holds fd 2 the text is written straight into it (so a crash
    in the native call leaves its last words there) and read back from it; otherwise fd 2 points
    at a temporary file for the duration."""
    captured = Captured()
    if _log_path is not None:
        with _read_back(_log_path, captured):
            yield captured
        return
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


@contextmanager
def _read_back(path: str, captured: Captured) -> Iterator[None]:
    sys.stderr.flush()
    try:
        start = os.fstat(2).st_size
    except OSError:
        start = 0
    try:
        yield
    finally:
        sys.stderr.flush()
        try:
            with open(path, "rb") as f:
                f.seek(start)
                captured.text = f.read().decode("utf-8", "replace")
        except OSError:
            pass
