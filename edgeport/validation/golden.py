"""golden.npz: the inputs, labels and reference outputs a bundle is re-judged on.

Read back bounded: the archive and every member's declared size are checked before anything is
decompressed, members are read as .npy without pickles, and the arrays must agree on the number
of samples.
"""
from __future__ import annotations

import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..data import LABELS_PREFIX, Dataset
from ..errors import ModelLoadError, one_line
from .bundle import CHUNK_BYTES

#: golden.npz whose arrays declare more bytes than this (uncompressed) is refused unread
GOLDEN_READ_MAX_BYTES = 2 * 1024 * 1024 * 1024


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
        n = member.readinto(view[got:got + CHUNK_BYTES])
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


