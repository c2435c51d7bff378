"""Writing a bundle atomically: build it in a hidden folder beside the final one, swap it in in
one step when complete, and clean up what killed exports left behind; SIGTERM/SIGHUP become an
interrupt so the cleanup runs."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .manifest import MANIFEST

_HOST = "h" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)(?:-(?P<rest>.*))?")
_TERMINATING = (signal.SIGTERM, signal.SIGHUP)
_state = threading.local()
_pending: list[int] = []


def staging_name(final: Path, kind: str) -> Path:
    """A hidden name beside ``final`` for work in progress (``kind`` partial | old) that
    :func:`sweep_stale` removes once the process that made it is dead."""
    token = f"{_HOST}-{time.monotonic_ns()}-{secrets.token_hex(4)}"
    return final.parent / f".{final.name}.{kind}-{os.getpid()}-{token}"


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """Yield an empty hidden staging folder beside ``final``. On success it replaces ``final`` in
    one atomic step (a folder already there is exchanged, so the final name always holds a whole
    bundle, old or new); concurrent finishers into one parent take turns under a lock. On any
    exception -- KeyboardInterrupt and :class:`Terminated` included -- the staging folder is
    removed and ``final`` is left as it was. Leftovers of dead processes (SIGKILL) are swept first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final.parent, final.name)
    stage = staging_name(final, "partial")
    stage.mkdir()
    retired: Path | None = None
    try:
        yield stage
        with _swap_lock(final.parent), _deferred_termination():
            retired = _install(stage, final)
    except BaseException:
        for leftover in (stage, retired):
            if leftover is not None:
                _remove(leftover)
        raise
    if retired is not None:
        _remove(retired)


def _install(stage: Path, final: Path) -> Path | None:
    """Put ``stage`` under ``final`` (the caller holds the lock); the path now holding the
    replaced bundle, if any, for the caller to remove."""
    if not os.path.lexists(final):
        os.rename(stage, final)
        return None
    if _exchange(stage, final):
        return stage
    old = staging_name(final, "old")  # no atomic exchange here: a window, closed by sweep_stale
    os.rename(final, old)
    os.rename(stage, final)
    return old


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _libc_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


@contextmanager
def _swap_lock(parent: Path) -> Iterator[None]:
    """An exclusive advisory lock on the parent folder itself (no lock file left behind); where
    a file system cannot lock a folder, on a hidden ``.edgeport.lock`` file in it."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.close(fd)
            fd = os.open(parent / ".edgeport.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove(path: Path) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(parent: str | Path, name: str | None = None) -> list[Path]:
    """Remove the staging leftovers (``.NAME.partial-PID-*``, ``.NAME.old-PID-*``) of processes
    on this host that are no longer alive; with ``name``, only those of that bundle. A bundle
    whose final folder is missing gets its newest dead ``.old`` bundle back (a crash between the
    two renames where no atomic exchange exists). Returns the paths removed."""
    parent = Path(parent)
    try:
        entries = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    stale: list[tuple[str, str, Path]] = []
    for entry in entries:
        m = _LEFTOVER.fullmatch(entry)
        if not m or (name is not None and m["name"] != name):
            continue
        rest = m["rest"] or ""
        if rest.startswith("h") and not rest.startswith(_HOST + "-"):
            continue  # another host's: its PIDs mean nothing here
        if not _alive(int(m["pid"])):
            stale.append((m["name"], m["kind"], parent / entry))
    if not stale:
        return []
    removed = []
    with _swap_lock(parent):
        for bundle_name in sorted({n for n, _, _ in stale}):
            final = parent / bundle_name
            olds = [p for n, k, p in stale if n == bundle_name and k == "old" and (p / MANIFEST).is_file()]
            if olds and not os.path.lexists(final):
                newest = max(olds, key=lambda p: p.stat().st_mtime_ns)
                os.rename(newest, final)
                stale = [s for s in stale if s[2] != newest]
        for _, _, path in stale:
            if os.path.lexists(path):
                _remove(path)
                removed.append(path)
    return removed


class Terminated(KeyboardInterrupt):
    """Raised in the main thread for SIGTERM/SIGHUP inside :func:`sigterm_as_interrupt`."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt) in the
    main thread, so ``staging`` and every ``finally`` clean up as on Ctrl-C; a signal arriving
    while a bundle is being swapped into place is raised just after the swap. Previous handlers
    come back on exit. Off the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if getattr(_state, "deferring", 0):
            _pending.append(signum)
            return
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in _TERMINATING}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def _deferred_termination() -> Iterator[None]:
    _state.deferring = getattr(_state, "deferring", 0) + 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring and _pending and threading.current_thread() is threading.main_thread():
        signum = _pending.pop()
        _pending.clear()
        raise Terminated(signum)
