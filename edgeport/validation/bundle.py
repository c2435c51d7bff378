"""Bundles: the folder a release ships and CI re-checks (manifest, report, golden I/O, artifact).

Written atomically: everything goes into a hidden staging folder beside the final one, which is
renamed into place only when complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..data import Dataset
from ..errors import ModelLoadError

MANIFEST = "manifest.json"
REPORT = "report.json"
GOLDEN = "golden.npz"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``final``, on error it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.parent / f".{final.name}.partial-{os.getpid()}-{time.monotonic_ns()}"
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_golden(path: Path, golden: Dataset, reference: dict[str, np.ndarray],
                 converted_reference: dict[str, np.ndarray] | None) -> None:
    arrays: dict[str, np.ndarray] = {f"input__{k}": v for k, v in golden.inputs.items()}
    if golden.labels is not None:
        arrays["labels"] = golden.labels
    arrays.update({f"reference__{k}": v for k, v in reference.items()})
    for k, v in (converted_reference or {}).items():
        arrays[f"converted_reference__{k}"] = v
    np.savez_compressed(path, **arrays)


@dataclass
class Golden:
    data: Dataset
    reference: dict[str, np.ndarray]
    converted_reference: dict[str, np.ndarray] | None


def read_golden(path: Path, output_names: list[str]) -> Golden:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    inputs = {k[len("input__"):]: v for k, v in arrays.items() if k.startswith("input__")}
    ref = {n: arrays[f"reference__{n}"] for n in output_names}
    conv = {n: arrays[f"converted_reference__{n}"] for n in output_names
            if f"converted_reference__{n}" in arrays} or None
    return Golden(Dataset(inputs, arrays.get("labels"), "golden.npz"), ref, conv)


def write_manifest(bundle: Path, meta: dict[str, Any]) -> None:
    """Hash every file in the bundle (except the manifest itself) and write manifest.json."""
    files = []
    for f in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = f.relative_to(bundle).as_posix()
        if rel == MANIFEST:
            continue
        files.append({"path": rel, "sha256": sha256_file(f), "bytes": f.stat().st_size})
    (bundle / MANIFEST).write_text(json.dumps({**meta, "files": files}, indent=2))


def read_manifest(bundle: Path) -> dict[str, Any]:
    m = bundle / MANIFEST
    if not bundle.is_dir():
        raise ModelLoadError(f"not a bundle folder: {bundle}")
    if not m.is_file():
        raise ModelLoadError(f"{bundle} has no {MANIFEST}: not an edgeport bundle")
    try:
        return json.loads(m.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{m} is not valid JSON: {exc}") from exc


def verify_files(bundle: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-hashing the files the manifest lists (changed, missing, unlisted)."""
    problems = []
    listed = set()
    for entry in manifest.get("files", []):
        rel = entry["path"]
        listed.add(rel)
        f = bundle / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
        elif f.stat().st_size != entry["bytes"] or sha256_file(f) != entry["sha256"]:
            problems.append(f"{rel} changed (sha256 differs from the manifest)")
    for f in bundle.rglob("*"):
        rel = f.relative_to(bundle).as_posix()
        if f.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel} is not listed in the manifest")
    return problems
