"""Bundles: the folder a release ships and CI re-checks (manifest, report, golden I/O, artifact).

Written atomically: everything goes into a hidden staging folder beside the final one, which
replaces the final folder in one step only when complete (see :func:`staging`).

Re-checked without leaving the bundle: every path the manifest names is a normalised relative
path inside it, only regular files are read, symlinks anywhere in the bundle are problems (never
followed), the manifest and golden.npz are bounded in size, and files are hashed in chunks.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import math
import os
import posixpath
import re
import secrets
import shutil
import signal
import socket
import stat
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from ..data import LABELS_PREFIX, Dataset
from ..errors import ConversionError, ModelLoadError, one_line

MANIFEST = "manifest.json"
REPORT = "report.json"
GOLDEN = "golden.npz"
#: written by :func:`edgeport.validation.signing.sign_bundle`; never listed in the manifest (it
#: signs the manifest), the one unlisted file allowed, and only at the top of the bundle
SIGNATURE = "signature.json"

#: manifest.json larger than this is refused unread
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
#: golden.npz whose arrays declare more bytes than this (uncompressed) is refused unread
GOLDEN_READ_MAX_BYTES = 2 * 1024 * 1024 * 1024

_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"path", "sha256", "bytes"}
_RESERVED = {MANIFEST, SIGNATURE}


def sha256_file(path: Path) -> str:
    """sha256 of a regular file, read in 1 MiB chunks; a symlink is refused, not followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Walking and opening inside a bundle, never through a symlink

@dataclass(frozen=True)
class _Tree:
    files: dict[str, int]          # regular files: relative posix path -> bytes
    symlinks: tuple[str, ...]      # symlinks (to files or folders), never followed
    special: tuple[str, ...]       # fifos, sockets, devices


def _walk(root: Path) -> _Tree:
    files: dict[str, int] = {}
    links: list[str] = []
    special: list[str] = []
    for here, dirs, names, dir_fd in os.fwalk(root, follow_symlinks=False):
        rel_here = Path(here).relative_to(root).as_posix()
        prefix = "" if rel_here == "." else rel_here + "/"
        for name in list(dirs):
            st = _lstat(name, dir_fd)
            if st is None or stat.S_ISLNK(st.st_mode):
                if st is not None:
                    links.append(prefix + name)
                dirs.remove(name)
        for name in names:
            st = _lstat(name, dir_fd)
            if st is None:
                continue  # removed while walking: whoever lists it will find it missing
            if stat.S_ISLNK(st.st_mode):
                links.append(prefix + name)
            elif stat.S_ISREG(st.st_mode):
                files[prefix + name] = st.st_size
            else:
                special.append(prefix + name)
    return _Tree(files, tuple(sorted(links)), tuple(sorted(special)))


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_inside(root: Path, rel: str) -> BinaryIO:
    """Open ``root/rel`` for reading, refusing a symlink at every component (``OSError`` ELOOP /
    ENOTDIR) and anything but a regular file at the end."""
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise OSError(errno.EINVAL, "not a regular file", rel)
    return os.fdopen(leaf, "rb")


def read_inside(bundle: str | Path, rel: str, limit: int) -> bytes:
    """The bytes of ``bundle/rel``, a regular file reached without following any symlink, at most
    ``limit`` bytes; :class:`ModelLoadError` otherwise (``FileNotFoundError`` if absent)."""
    root = Path(os.path.realpath(bundle))
    try:
        with _open_inside(root, rel) as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(f"{root / rel} is a symbolic link: a bundle holds regular files only") from None
        raise ModelLoadError(f"cannot read {root / rel}: {one_line(exc)}") from None
    if len(data) > limit:
        raise ModelLoadError(f"{root / rel} is larger than {limit >> 20} MiB: refused unread")
    return data


def _read_bounded(root: Path, rel: str, limit: int) -> bytes:
    try:
        return read_inside(root, rel, limit)
    except FileNotFoundError:
        raise ModelLoadError(f"{root} has no {rel}: not an edgeport bundle") from None


# ------------------------------------------------------------------------------------------------
# The manifest

def write_manifest(bundle: Path, meta: dict[str, Any]) -> None:
    """Hash every file in the bundle (except the manifest and a signature) and write manifest.json.
    A symlink or special file in the bundle is refused: validation would never accept it."""
    tree = _walk(bundle)
    odd = tree.symlinks + tree.special
    if odd:
        kind = "a symbolic link" if tree.symlinks else "not a regular file"
        fmt = str((meta.get("artifact") or {}).get("format", "bundle"))
        raise ConversionError(fmt, "bundle", f"{odd[0]} is {kind}: a bundle holds regular files only")
    files = []
    for rel in sorted(tree.files):
        if rel in _RESERVED:
            continue
        with _open_inside(bundle, rel) as f:
            size = os.fstat(f.fileno()).st_size
            files.append({"path": rel, "sha256": _sha256_stream(f), "bytes": size})
    (bundle / MANIFEST).write_text(json.dumps({**meta, "files": files}, indent=2))


def read_manifest_bytes(bundle: Path) -> bytes:
    """The exact bytes of ``bundle/manifest.json``: a regular file (not a symlink), at most
    :data:`MANIFEST_MAX_BYTES`."""
    if not Path(bundle).is_dir():
        raise ModelLoadError(f"not a bundle folder: {bundle}")
    return _read_bounded(Path(os.path.realpath(bundle)), MANIFEST, MANIFEST_MAX_BYTES)


def parse_manifest(raw: bytes, where: str = MANIFEST) -> dict[str, Any]:
    """Manifest bytes as a dict, its shape checked: a JSON object whose ``files`` is a list of
    ``{path, sha256, bytes}`` with safe unique paths; ``artifact.entry``/``artifact.files``, when
    present, name listed files. One :class:`ModelLoadError` naming the first problem."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelLoadError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{where} is not valid JSON: {one_line(exc)}") from None
    except RecursionError:
        raise ModelLoadError(f"{where} is nested too deeply") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{where} must hold a JSON object, not {type(manifest).__name__}")
    _check_artifact(where, manifest.get("artifact"), _check_files(where, manifest))
    return manifest


def _check_files(where: str, manifest: dict[str, Any]) -> set[str]:
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ModelLoadError(f"{where}: files must be a list of {{path, sha256, bytes}}")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        _check_entry(where, i, entry, seen)
    return seen


def _check_entry(where: str, i: int, entry: Any, seen: set[str]) -> None:
    at = f"{where}: files[{i}]"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{at} must be an object {{path, sha256, bytes}}")
    lacking = sorted(_ENTRY_KEYS - set(entry))
    if lacking:
        raise ModelLoadError(f"{at} lacks {lacking[0]} (each entry is {{path, sha256, bytes}})")
    path, digest, size = entry["path"], entry["sha256"], entry["bytes"]
    problem = safe_relative_path(path)
    if problem:
        raise ModelLoadError(f"{at}.path {path!r} {problem}")
    if path in _RESERVED:
        raise ModelLoadError(f"{at}.path {path!r}: the manifest cannot list {path}")
    if path in seen:
        raise ModelLoadError(f"{at}.path {path!r} is listed twice")
    seen.add(path)
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ModelLoadError(f"{at}.sha256 must be 64 lowercase hex digits")
    if type(size) is not int or size < 0:
        raise ModelLoadError(f"{at}.bytes must be a non-negative integer")


def _check_artifact(where: str, art: Any, listed: set[str]) -> None:
    if not isinstance(art, dict):
        return  # the pipeline says which keys a bundle lacks
    names = [("artifact.entry", art["entry"])] if "entry" in art else []
    files = art.get("files", [])
    if not isinstance(files, list):
        raise ModelLoadError(f"{where}: artifact.files must be a list of paths")
    names += [(f"artifact.files[{i}]", f) for i, f in enumerate(files)]
    for key, path in names:
        problem = safe_relative_path(path)
        if problem:
            raise ModelLoadError(f"{where}: {key} {path!r} {problem}")
        if path not in listed and not any(p.startswith(path + "/") for p in listed):
            raise ModelLoadError(f"{where}: {key} {path!r} is not a file the manifest lists")


def safe_relative_path(path: Any) -> str | None:
    """Why ``path`` cannot name a file inside a bundle (None: it can). The answer depends on the
    string alone, never on what exists on disk."""
    if not isinstance(path, str):
        return "must be a string"
    if not path or "\0" in path or "\\" in path:
        return "is empty or holds a NUL or backslash"
    if path.startswith("/"):
        return "is absolute: paths are relative to the bundle"
    if ".." in path.split("/"):
        return "escapes the bundle (..)"
    if posixpath.normpath(path) != path:
        return "is not normalised (no ./, //, trailing /)"
    return None


def read_manifest(bundle: Path) -> dict[str, Any]:
    """``bundle/manifest.json``, bounded in size and checked in shape (see :func:`parse_manifest`)."""
    return parse_manifest(read_manifest_bytes(bundle), str(Path(bundle) / MANIFEST))


def verify_files(bundle: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-hashing the files a checked manifest lists: changed, missing, unlisted,
    symlinks (named, never followed) and special files. A file whose size differs from the
    manifest is reported without being hashed. Empty list: every byte matches."""
    root = Path(os.path.realpath(bundle))
    _check_files(str(root / MANIFEST), manifest)
    tree = _walk(root)
    problems = [f"{p} is a symbolic link (not followed)" for p in tree.symlinks]
    problems += [f"{p} is not a regular file" for p in tree.special]
    odd = set(tree.symlinks) | set(tree.special)
    listed = set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        if rel in odd:
            continue
        if rel not in tree.files:
            problems.append(f"{rel} is missing")
        elif tree.files[rel] != entry["bytes"]:
            problems.append(f"{rel} changed: {tree.files[rel]} bytes, the manifest says {entry['bytes']}")
        elif _hash_inside(root, rel) != entry["sha256"]:
            problems.append(f"{rel} changed (sha256 differs from the manifest)")
    for rel in sorted(tree.files):
        if rel not in listed and rel not in _RESERVED:
            problems.append(f"{rel} is not listed in the manifest")
    return problems


def _hash_inside(root: Path, rel: str) -> str | None:
    try:
        with _open_inside(root, rel) as f:
            return _sha256_stream(f)
    except OSError:  # replaced by a symlink or removed since the walk: it does not match
        return None


@dataclass(frozen=True)
class Integrity:
    """The verdict on a bundle's files against its manifest. When ``ok`` is false nothing in the
    bundle should be parsed or run: report ``detail()`` and stop."""

    manifest: dict[str, Any]
    manifest_bytes: bytes
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def detail(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        return f"{len(self.manifest['files'])} files match their sha256"


def check_integrity(bundle: str | Path) -> Integrity:
    """Read the manifest (bounded, shape-checked: :class:`ModelLoadError` if not a bundle) and
    re-hash every file it lists."""
    root = Path(bundle)
    raw = read_manifest_bytes(root)
    manifest = parse_manifest(raw, str(root / MANIFEST))
    return Integrity(manifest, raw, tuple(verify_files(root, manifest)))


# ------------------------------------------------------------------------------------------------
# Golden I/O

def write_golden(path: Path, golden: Dataset, reference: dict[str, np.ndarray],
                 converted_reference: dict[str, np.ndarray] | None) -> None:
    arrays: dict[str, np.ndarray] = {f"input__{k}": v for k, v in golden.inputs.items()}
    if golden.labels is not None:
        arrays["labels"] = golden.labels
    arrays.update({LABELS_PREFIX + k: np.asarray(v) for k, v in golden.output_labels.items()})
    arrays.update({f"reference__{k}": v for k, v in reference.items()})
    for k, v in (converted_reference or {}).items():
        arrays[f"converted_reference__{k}"] = v
    np.savez_compressed(path, **arrays)


@dataclass
class Golden:
    data: Dataset
    reference: dict[str, np.ndarray]
    converted_reference: dict[str, np.ndarray] | None


def read_golden(path: Path, output_names: list[str], max_bytes: int = GOLDEN_READ_MAX_BYTES) -> Golden:
    """golden.npz, bounded: the arrays' declared sizes (zip entries and .npy headers) must stay
    under ``max_bytes`` before anything is decompressed; numeric dtypes only, no pickles, no 0-d
    arrays, every ``reference__<output>`` present, one sample count. :class:`ModelLoadError`
    naming the problem otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path.name}: {one_line(exc)}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ModelLoadError(f"{path.name} is not a regular file")
        try:
            arrays = _read_npz(f, path.name, max_bytes)
        except ModelLoadError:
            raise
        except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                zipfile.LargeZipFile) as exc:  # RuntimeError: an encrypted member
            raise ModelLoadError(f"{path.name} is malformed: {one_line(exc)}") from None
    return _golden_from(arrays, output_names, path.name)


def _read_npz(f: BinaryIO, name: str, max_bytes: int) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(f) as z:
        infos = z.infolist()
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise ModelLoadError(f"{name} declares {declared} bytes of arrays, over the {max_bytes}-byte limit")
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ModelLoadError(f"{name}: member {info.filename!r} is not a .npy array")
            key = info.filename[:-4]
            if key in arrays:
                raise ModelLoadError(f"{name}: array {key!r} appears twice")
            with z.open(info) as member:
                arrays[key] = _read_npy(member, info.file_size, f"{name}: {key}")
    return arrays


def _read_npy(member: BinaryIO, declared: int, where: str) -> np.ndarray:
    """One .npy member, its header checked against the zip's declared size before any data is
    allocated: never more than ``declared`` bytes."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ModelLoadError(f"{where}: unsupported .npy version {version}")
    shape, fortran, dtype = read_header(member)
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
        raise ModelLoadError(f"{where}: dtype {dtype} refused (numbers only)")
    if len(shape) == 0:
        raise ModelLoadError(f"{where}: a 0-d array has no samples")
    count = math.prod(shape) if all(d >= 0 for d in shape) else -1
    nbytes = count * dtype.itemsize
    if count < 0 or nbytes > declared:
        raise ModelLoadError(f"{where}: header claims shape {shape} ({nbytes} bytes), the file holds {declared}")
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        n = member.readinto(view[got:got + _CHUNK])
        if not n:
            raise ModelLoadError(f"{where}: truncated ({got} of {nbytes} bytes)")
        got += n
    if member.read(1):  # reading to the end also makes zipfile check the member's CRC
        raise ModelLoadError(f"{where}: bytes beyond the array its header declares")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _golden_from(arrays: dict[str, np.ndarray], output_names: list[str], name: str) -> Golden:
    inputs = {k[len("input__"):]: v for k, v in arrays.items() if k.startswith("input__")}
    if not inputs:
        raise ModelLoadError(f"{name} holds no input__<name> arrays")
    missing = [n for n in output_names if f"reference__{n}" not in arrays]
    if missing:
        raise ModelLoadError(f"{name} lacks reference__{missing[0]}")
    ref = {n: arrays[f"reference__{n}"] for n in output_names}
    conv = {n: arrays[f"converted_reference__{n}"] for n in output_names
            if f"converted_reference__{n}" in arrays} or None
    labels = arrays.get("labels")
    # labels per output (bundles written before them hold the plain ``labels`` only)
    named = {k[len(LABELS_PREFIX):]: v for k, v in arrays.items() if k.startswith(LABELS_PREFIX)}
    unknown = sorted(set(named) - set(output_names))
    if unknown:
        raise ModelLoadError(f"{name} holds {LABELS_PREFIX}{unknown[0]}, but the model has no such output")
    counted = {f"input__{k}": v for k, v in inputs.items()}
    counted.update({f"reference__{k}": v for k, v in ref.items()})
    counted.update({f"converted_reference__{k}": v for k, v in (conv or {}).items()})
    if labels is not None:
        counted["labels"] = labels
    counted.update({LABELS_PREFIX + k: v for k, v in named.items()})
    counts = {k: len(v) for k, v in counted.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        raise ModelLoadError(f"{name}: arrays disagree on the number of samples ({detail})")
    return Golden(Dataset(inputs, labels, "golden.npz", named), ref, conv)


# ------------------------------------------------------------------------------------------------
# Staging: build hidden, replace in one step, clean up after the dead

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
