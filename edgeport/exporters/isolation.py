"""Run an exporter in a child process, so a converter that crashes the process (a segfault in
TFLiteConverter's int8 calibration, an abort in a native library) or hangs becomes a named error
for that target instead of the end of the whole run.

The child is forked: it inherits the loaded model and writes the artifact straight into the
staging folder; only the returned :class:`~edgeport.formats.Artifact` (or the error's class and
message) comes back through a pipe. Converters' own heavy libraries (TensorFlow, coremltools) are
imported in the child and never in the parent.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConversionError, EdgeportError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from ..formats import Artifact
    from .base import Exporter, ExportJob

#: a test hook: when this variable names a target, its child aborts the process (as a native crash would)
CRASH_HOOK = "EDGEPORT_TEST_CRASH_TARGET"


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], label: str) -> None:
    _single_threaded_torch()
    try:
        if os.environ.get(CRASH_HOOK) == label:
            os.abort()
        conn.send(("ok", fn(*args)))
    except EdgeportError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:  # a library's own exception, kept as one line
        conn.send(("error", "", f"{type(exc).__name__}: {one_line(exc)}"))
    finally:
        conn.close()


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
    from .. import errors

    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgeportError)):
        cls = EdgeportError
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


def call_isolated(fn: Callable[..., Any], args: tuple[Any, ...], timeout_s: float, what: str,
                  label: str = "", converts: bool = False) -> Any:
    """``fn(*args)`` in a forked child, its result returned; a crash, a hang past ``timeout_s``
    or an exception becomes an :class:`EdgeportError` naming ``what``. ``label`` names the
    call for the crash test hook.

    A converter (``converts``) may use TensorFlow: when this process has already loaded it (a
    Keras user calling the Python API), a forked child would deadlock in TensorFlow's thread
    pools, so the conversion runs in this process — exceptions still become named errors, but a
    native crash or a hang is not contained. The CLI never loads TensorFlow in its own process;
    runtime runs (onnxruntime, LiteRT, the emulator, Node) always fork."""
    if converts and not fork_is_safe():
        try:
            return fn(*args)
        except EdgeportError:
            raise
        except Exception as exc:
            raise _Failure(f"{what} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, label))
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise _Timeout(f"{what} did not finish within {timeout_s:g} s (profile option timeout_s)")
        try:
            answer = parent.recv()
        except EOFError:
            proc.join(10)
            raise _Crash(f"{what} {_crash_message(proc.exitcode)}") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
    if answer[0] == "ok":
        return answer[1]
    if not answer[1]:
        raise _Failure(f"{what} failed: {answer[2]}")
    raise _rebuild(answer[1], answer[2])


class _Timeout(EdgeportError):
    pass


class _Crash(EdgeportError):
    pass


class _Failure(EdgeportError):
    pass


def export_isolated(exporter: "Exporter", job: "ExportJob", out_dir: Path, stage: str = "export") -> "Artifact":
    """``exporter.export(job, out_dir)`` in a forked child, bounded by the plan's ``timeout_s``;
    a crash, hang or converter exception is a :class:`ConversionError` of that format."""
    fmt = job.plan.format
    try:
        return call_isolated(exporter.export, (job, Path(out_dir)), float(job.plan.options.timeout_s),
                             "the converter", label=job.plan.target, converts=True)
    except (_Timeout, _Crash, _Failure) as exc:
        raise ConversionError(fmt, stage, str(exc)) from None


def _crash_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"crashed ({name}); the process was isolated, other targets are unaffected"
    return f"exited with code {code} without a result"
