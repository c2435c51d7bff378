"""Everything a target's converters and runtimes print, kept in a log file beside its bundle.

Converters talk a lot, and from places Python cannot silence: TensorFlow's C++ (``E0000 ...
cuInit``), coremltools' version notices and tqdm bars, torchao's failed ``.so`` loads, torch's
``_pytree`` W-lines, onnxruntime's quantizer warnings, onnx2tf's log. While one target runs, file
descriptors 1 and 2 (which forked converter children and subprocesses inherit), ``sys.stdout`` /
``sys.stderr`` and the converters' loggers all point at ``OUT/<model>-<target>.log``; edgeport's
own progress lines still reach the terminal and are copied into the log. Everything is put back
when the target ends — the caller's streams and logging setup come out of the call unchanged.

The log is written under a hidden name and renamed into place when the target ends, failed or
not: concurrent exports into one folder never interleave in one file, and what a killed export
left is swept like a half bundle.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

from .errors import ConfigError
from .native_logs import set_log_path
from .progress import Progress
from .validation.staging import staging_name

#: loggers of the converters and their dependencies: routed into the log while a target runs
#: (torch's own handler would otherwise print its W-lines on the caller's stderr object)
CONVERTER_LOGGERS = ("coremltools", "torchao", "torch", "onnx2tf", "onnxruntime", "onnxscript", "onnx_ir",
                     "absl", "tensorflow", "tensorflowjs", "h5py", "jax")
LOG_SUFFIX = ".log"


def log_path(out_dir: Path, bundle_name: str) -> Path:
    """Where a target's log goes: beside its bundle (a failed target has no bundle)."""
    return Path(out_dir) / f"{bundle_name}{LOG_SUFFIX}"


@contextmanager
def target_log(final: Path, progress: Progress) -> Iterator[TextIO]:
    """Send everything printed in the block to the log file ``final``; yield it (for lines of
    edgeport's own). ``progress`` keeps printing where it printed before."""
    final = Path(final)
    partial = staging_name(final, "partial")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        log = open(partial, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:  # an output folder no target could be written to
        raise ConfigError(f"cannot write {final}: {exc.strerror or exc}") from None
    try:
        with _fds_to(log, progress), _streams_to(log), _loggers_to(log):
            yield log
    finally:
        log.close()
        os.replace(partial, final)


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _flush(*streams: Any) -> None:
    for s in streams:
        try:
            s.flush()
        except (AttributeError, OSError, ValueError):
            pass


@contextmanager
def _fds_to(log: TextIO, progress: Progress) -> Iterator[None]:
    """fd 1 and fd 2 onto the log; progress lines that went to fd 2 go to a copy of the old one."""
    _flush(sys.stdout, sys.stderr, progress.stream)
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no real descriptors (embedded interpreters): the Python level still applies
        yield
        return
    terminal = None
    stream_before, log_before = progress.stream, progress.log
    if _fileno(progress.stream) == 2:
        terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding=getattr(progress.stream, "encoding", None)
                             or "utf-8", errors="backslashreplace")
        progress.stream = terminal
    progress.log = log
    for fd in saved:
        os.dup2(log.fileno(), fd)
    before = set_log_path(str(log.name))
    try:
        yield
    finally:
        _flush(sys.stdout, sys.stderr)
        set_log_path(before)
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        progress.stream, progress.log = stream_before, log_before
        if terminal is not None:
            terminal.close()


@contextmanager
def _streams_to(log: TextIO) -> Iterator[None]:
    """``sys.stdout`` / ``sys.stderr`` as Python objects, for callers whose streams are not fds
    (notebooks, pytest's capture): libraries print through them, tqdm and warnings included."""
    before = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = log
    try:
        yield
    finally:
        _flush(log)
        sys.stdout, sys.stderr = before


@contextmanager
def _loggers_to(log: TextIO) -> Iterator[None]:
    """The converters' loggers write into the log, not to their own handlers or the caller's;
    a root logger without handlers gets one for the block, so ``logging.warning()`` in a library
    does not install a permanent one on the caller's behalf (``basicConfig``)."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in CONVERTER_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.handlers[:], lg.propagate))
        lg.handlers[:] = [handler]
        lg.propagate = False
    root = logging.getLogger()
    bare_root = not root.handlers
    if bare_root:
        root.addHandler(handler)
    try:
        yield
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers[:] = handlers
            lg.propagate = propagate
        if bare_root:
            root.removeHandler(handler)
