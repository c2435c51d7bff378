"""Run a function in a child process, so a library that crashes the process (a segfault in
TFLiteConverter's int8 calibration, an abort in a native library) or hangs becomes a named error
instead of the end of the whole run. Converters (:mod:`edgeport.exporters.isolation`), runtime
runs and TensorFlow sources' reference runs all go through :func:`call_isolated`.

The child is forked: it inherits the loaded model and writes its files straight where it is told;
only the returned value (or the error's class and message) comes back through a pipe. Heavy
libraries (TensorFlow, coremltools) are imported in the child and never in the parent.
"""
from __future__ import annotations

import faulthandler
import multiprocessing
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import ConversionError, EdgeportError, one_line
from .native_logs import current_log

if TYPE_CHECKING:  # pragma: no cover
    from .progress import Progress

#: a test hook: when this variable names a target, its child aborts the process (as a native crash would)
CRASH_HOOK = "EDGEPORT_TEST_CRASH_TARGET"


#: characters of a library's exception message sent back to the parent (for the log and the hints)
DETAIL_LIMIT = 20_000


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], label: str,
           progress: "Progress | None") -> None:
    _single_threaded_torch()
    if current_log() is not None:  # a native crash leaves the Python stack it happened in there
        faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=False)
    if progress is not None:  # the parent learns which step a crash or a hang happened in
        progress.listener = lambda event, message: conn.send(("step", event, message))
    try:
        if os.environ.get(CRASH_HOOK) == label:
            os.abort()
        conn.send(("ok", fn(*args)))
    except ConversionError as exc:  # crosses whole: stage, op, the backend's full message
        conn.send(("raised", exc))
    except EdgeportError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:  # a library's own exception: one line, and all of it for the log
        conn.send(("error", "", f"{type(exc).__name__}: {one_line(exc)}",
                   f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT]))
    finally:
        conn.close()


class _Trail:
    """The progress steps a call is in, replayed from its events: a crash or a hang happened in
    the innermost open step; an exception in the innermost step that failed (reset by any step
    opening or ending after it, so a failure handled inside a later retry is not blamed)."""

    def __init__(self) -> None:
        self.open: list[str] = []
        self.failed: str | None = None

    def event(self, event: str, message: str) -> None:
        if event == "open":
            self.open.append(message)
            self.failed = None
            return
        if self.open and self.open[-1] == message:
            self.open.pop()
        self.failed = (self.failed or message) if event == "fail" else None

    @property
    def stage(self) -> str | None:
        return self.failed or (self.open[-1] if self.open else None)


@contextmanager
def _listening(progress: "Progress | None", trail: _Trail) -> Iterator[None]:
    if progress is None:
        yield
        return
    before = progress.listener
    progress.listener = trail.event
    try:
        yield
    finally:
        progress.listener = before


#: libraries whose thread pools do not survive a fork (the child deadlocks on its first use)
FORK_UNSAFE_MODULES = ("tensorflow",)


def fork_is_safe() -> bool:
    return not any(m in sys.modules for m in FORK_UNSAFE_MODULES)


def _single_threaded_torch() -> None:
    """After a fork, torch's OpenMP pool is the parent's and hangs the child on its first parallel
    kernel (GNU libgomp is not fork-safe) when the parent already ran multi-threaded torch code —
    a model trained or evaluated in the same process. One thread runs every kernel inline."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _rebuild(kind: str, message: str) -> EdgeportError:
    """The child's error as an instance of the same edgeport class (message kept as is)."""
    from . import errors

    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgeportError)):
        cls = EdgeportError
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


def call_isolated(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float, what: str,
                  label: str = "", converts: bool = False, progress: "Progress | None" = None) -> Any:
    """``fn(*args)`` in a forked child, its result returned; a crash, a hang past ``timeout_s``
    or an exception becomes an :class:`EdgeportError` naming ``what`` (with the ``progress``
    step it happened in as its ``stage``, when ``fn`` reports steps there). ``label`` names the
    call for the crash test hook.

    A converter (``converts``) may use TensorFlow: when this process has already loaded it (a
    Keras user calling the Python API), a forked child would deadlock in TensorFlow's thread
    pools, so the conversion runs in this process — exceptions still become named errors, but a
    native crash or a hang is not contained. The CLI never loads TensorFlow in its own process;
    runtime runs (onnxruntime, LiteRT, the emulator, Node) always fork."""
    trail = _Trail()
    if converts and not fork_is_safe():
        with _listening(progress, trail):
            try:
                return fn(*args)
            except EdgeportError:
                raise
            except Exception as exc:
                raise Failure(f"{what} failed: {type(exc).__name__}: {one_line(exc)}", trail.stage,
                               f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT]) from exc
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, label, progress))
    proc.start()
    child.close()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not parent.poll(max(deadline - time.monotonic(), 0.0)):
                raise _Timeout(f"{what} did not finish within {timeout_s:g} s (profile option timeout_s)",
                               trail.stage)
            try:
                answer = parent.recv()
            except EOFError:
                proc.join(10)
                raise _Crash(f"{what} {_crash_message(proc.exitcode, _crash_site())}", trail.stage) from None
            if answer[0] != "step":
                break
            trail.event(answer[1], answer[2])
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
    if answer[0] == "ok":
        return answer[1]
    if answer[0] == "raised":
        raise answer[1]
    if not answer[1]:
        raise Failure(f"{what} failed: {answer[2]}", trail.stage, answer[3])
    raise _rebuild(answer[1], answer[2])


class Isolated(EdgeportError):
    """A call that ended without a result or an edgeport error of its own: ``stage`` is the
    progress step it was in (None outside any), ``detail`` all of the library's message."""

    def __init__(self, message: str, stage: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.stage, self.detail = stage, detail or message


class _Timeout(Isolated):
    pass


class _Crash(Isolated):
    pass


class Failure(Isolated):
    pass


def _crash_message(code: int | None, site: str | None = None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        where = f" in {site}" if site else ""
        return f"crashed ({name}){where}; the process was isolated, other targets are unaffected"
    return f"exited with code {code} without a result"


def _crash_site() -> str | None:
    """Where in Python a crashed child was: the innermost frame of the stack faulthandler wrote
    into the target's log (``tensorflow/lite/python/optimize/calibrator.py (_feed_tensors)``)."""
    path = current_log()
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 65536))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    _, found, stack = text.rpartition("Fatal Python error")
    stack = stack.rpartition("Current thread")[2] or stack
    m = re.search(r'File "([^"]+)", line \d+ in (\w+)', stack) if found else None
    if m is None:
        return None
    file, root = m.group(1), str(Path(__file__).resolve().parents[1]) + os.sep
    if "site-packages/" in file:
        file = file.rpartition("site-packages/")[2]  # a library's path from its package on
    else:
        file = file[len(root):] if file.startswith(root) else os.path.basename(file)
    return f"{file} ({m.group(2)})"
