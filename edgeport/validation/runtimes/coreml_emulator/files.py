"""Reading the files of an untrusted .mlpackage: confined to the package, regular files only,
every read bounded.

A package is data someone handed us. Its Manifest.json names the spec file and the spec names
its weight files (``@model_path/weights/weight.bin``); both are strings an attacker controls, so
``../../etc/passwd``, an absolute path, a symlink leading out of the package or ``/dev/zero``
must not turn loading a model into reading (or endlessly reading) something else.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ....bounded_read import read_at_most
from ....errors import RuntimeLoadError

#: the largest model spec read (the protobuf holds the program and small inline constants; big
#: weights live in weight.bin). Real specs are kilobytes to a few megabytes.
MAX_SPEC_BYTES = 512 << 20
#: Manifest.json is a few hundred bytes
MAX_MANIFEST_BYTES = 1 << 20


def confine(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` resolved (symlinks followed), refused unless it stays inside ``root``
    and is a regular file."""
    if not relative or "\x00" in relative:
        raise RuntimeLoadError(f"{what}: empty or invalid file name")
    if Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        raise RuntimeLoadError(f"{what}: absolute path {relative!r} refused (files must be inside the package)")
    base = root.resolve()
    try:
        target = (base / relative).resolve()  # symlinks followed as far as they exist
    except (OSError, RuntimeError) as exc:  # symlink loop
        raise RuntimeLoadError(f"{what}: {relative!r} cannot be resolved ({type(exc).__name__})") from exc
    if target != base and base not in target.parents:  # checked before anything is opened
        raise RuntimeLoadError(f"{what}: {relative!r} leads outside the package; refused")
    if not target.exists():
        raise RuntimeLoadError(f"{what}: {relative!r} not found in the package")
    return regular_file(target, what)


def regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (not a device, FIFO, socket or folder)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise RuntimeLoadError(f"{what}: cannot read {path.name} ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise RuntimeLoadError(f"{what}: {path.name} is not a regular file; refused")
    return path


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The whole of a regular file, refused when it is larger than ``limit`` bytes. The size is
    checked before reading and the read itself stops at ``limit + 1`` bytes (the file may grow)."""
    regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            data = read_at_most(fh, limit)
    except OSError as exc:
        raise RuntimeLoadError(f"{what}: cannot read {path.name} ({exc.strerror})") from exc
    if data is None:
        raise RuntimeLoadError(f"{what}: {path.name} is over the {limit}-byte limit; refused")
    return data
