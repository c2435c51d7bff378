"""Datasets: named input arrays with the sample axis first, and optional labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelLoadError, one_line


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, shape (``-1`` for a free axis) and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32", "int64"


@dataclass(frozen=True)
class Dataset:
    """Inputs keyed by model input name, each shaped ``[N, ...]``; ``labels`` shaped ``[N]``."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        counts = {len(v) for v in self.inputs.values()}
        if len(counts) != 1:
            raise ModelLoadError(f"data inputs disagree on the number of samples: {sorted(counts)}")
        if self.labels is not None and len(self.labels) != counts.pop():
            raise ModelLoadError("data labels and inputs disagree on the number of samples")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, n: int | None) -> "Dataset":
        """The first ``n`` samples (all when ``n`` is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        return Dataset({k: v[:n] for k, v in self.inputs.items()},
                       None if self.labels is None else self.labels[:n], self.description)

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """Sample ``i`` as a batch of one: every array keeps a leading axis of 1."""
        return {k: v[i:i + 1] for k, v in self.inputs.items()}


#: a --data file larger than this is refused; its arrays are read into memory
MAX_DATA_BYTES = 8 << 30


def load_npz(path: str | Path, input_names: Sequence[str]) -> Dataset:
    """Read ``--data FILE.npz``: arrays named after the inputs (or ``x`` for a single input);
    a bundle's ``golden.npz`` is accepted too. The file is data: no pickles, numeric arrays only,
    every problem one :class:`ModelLoadError` naming the array."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ModelLoadError(f"data file not found: {p}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read data file {p}: {exc.strerror}") from None
    if not p.is_file():
        raise ModelLoadError(f"data file {p} is not a regular file")
    if size > MAX_DATA_BYTES:
        raise ModelLoadError(f"data file {p.name} is {size} bytes; more than {MAX_DATA_BYTES} bytes is refused")
    arrays = _read_arrays(p)
    labels = arrays.pop("labels", None)
    inputs: dict[str, np.ndarray] = {}
    for name in input_names:
        if name in arrays:
            inputs[name] = arrays[name]
        elif f"input__{name}" in arrays:  # a bundle's golden.npz
            inputs[name] = arrays[f"input__{name}"]
        elif len(input_names) == 1 and "x" in arrays:
            inputs[name] = arrays["x"]
        else:
            raise ModelLoadError(f"data file {p.name} has no array named {name!r} "
                                 f"(has: {', '.join(sorted(arrays)) or 'nothing'})")
    for name, arr in list(inputs.items()) + ([("labels", labels)] if labels is not None else []):
        if arr.ndim == 0:
            raise ModelLoadError(f"data array {name!r} is a single value; the first axis must be the samples")
        if len(arr) == 0:
            raise ModelLoadError(f"data array {name!r} has no samples")
        if arr.dtype.kind not in "biuf":
            raise ModelLoadError(f"data array {name!r} is {arr.dtype}; only numeric arrays are accepted")
    inputs = {k: (v.astype(v.dtype.newbyteorder("=")) if v.dtype.byteorder == ">" else v) for k, v in inputs.items()}
    if labels is not None and labels.dtype.byteorder == ">":
        labels = labels.astype(labels.dtype.newbyteorder("="))
    return Dataset(inputs, labels, description=p.name)


def _read_arrays(p: Path) -> dict[str, np.ndarray]:
    import zipfile

    if not zipfile.is_zipfile(p):
        kind = "a single .npy array" if p.read_bytes()[:6] == b"\x93NUMPY" else "not an .npz file"
        raise ModelLoadError(f"data file {p.name} is {kind}; save inputs with numpy.savez(FILE, name=array, ...)")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ModelLoadError(f"data file {p.name} holds Python objects; only numeric arrays are accepted") from None
        raise ModelLoadError(f"cannot read data file {p.name}: {one_line(exc)}") from None
    except Exception as exc:  # zip / header errors all mean "not a readable npz"
        raise ModelLoadError(f"cannot read data file {p.name}: {type(exc).__name__}: {one_line(exc)}") from None


def check_against(data: Dataset, specs: Sequence[tuple[str, tuple[int, ...], str]]) -> None:
    """Refuse data whose per-sample shape or dtype kind does not fit the model inputs."""
    for name, shape, dtype in specs:
        arr = data.inputs[name]
        want = tuple(shape[1:])
        got = tuple(arr.shape[1:])
        if len(want) != len(got) or any(w > 0 and w != g for w, g in zip(want, got)):
            raise ModelLoadError(f"data input {name!r} has per-sample shape {got}, model expects {want}")
        if np.dtype(dtype).kind != arr.dtype.kind and not (np.dtype(dtype).kind in "iu" and arr.dtype.kind in "iu"):
            raise ModelLoadError(f"data input {name!r} is {arr.dtype}, model expects {dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr.reshape(len(arr), -1))).any(1).argmax())
            raise ModelLoadError(f"data input {name!r} holds NaN or infinity (first in sample {bad}); "
                                 "parity cannot be judged on such inputs")
