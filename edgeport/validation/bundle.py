"""Bundles: the folder a release ships and CI re-checks (manifest, report, golden I/O, artifact).

Written atomically: everything goes into a hidden staging folder beside the final one, which
replaces the final folder in one step only when complete (:mod:`.staging`); golden.npz is read
and written by :mod:`.golden`.

Re-checked without leaving the bundle: every path the manifest names is a normalised relative
path inside it, only regular files are read, symlinks anywhere in the bundle are problems (never
followed), the manifest and golden.npz are bounded in size, and files are hashed in chunks.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..bounded_read import read_at_most
from ..errors import ConversionError, ModelLoadError, one_line
from .manifest import MANIFEST, RESERVED, check_files, parse_manifest

REPORT = "report.json"
GOLDEN = "golden.npz"

#: manifest.json larger than this is refused unread
MANIFEST_MAX_BYTES = 16 * 1024 * 1024

CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """sha256 of a regular file, read in 1 MiB chunks; a symlink is refused, not followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
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
            data = read_at_most(f, limit)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(f"{root / rel} is a symbolic link: a bundle holds regular files only") from None
        raise ModelLoadError(f"cannot read {root / rel}: {one_line(exc)}") from None
    if data is None:
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
        if rel in RESERVED:
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


def read_manifest(bundle: Path) -> dict[str, Any]:
    """``bundle/manifest.json``, bounded in size and checked in shape (see :func:`parse_manifest`)."""
    return parse_manifest(read_manifest_bytes(bundle), str(Path(bundle) / MANIFEST))


def verify_files(bundle: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-hashing the files a checked manifest lists: changed, missing, unlisted,
    symlinks (named, never followed) and special files. A file whose size differs from the
    manifest is reported without being hashed. Empty list: every byte matches."""
    root = Path(os.path.realpath(bundle))
    check_files(str(root / MANIFEST), manifest)
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
        if rel not in listed and rel not in RESERVED:
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
