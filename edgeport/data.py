"""Datasets: named input arrays with the sample axis first, and optional labels per output."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import ModelLoadError, one_line

#: ``labels__<output>`` in a --data file (and golden.npz): labels for the output named ``<output>``
LABELS_PREFIX = "labels__"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, shape (``-1`` for a free axis) and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32", "int64"


@dataclass(frozen=True)
class Dataset:
    """Inputs keyed by model input name, each shaped ``[N, ...]``, and optional labels.

    ``labels`` (the npz's plain ``labels``) belong to the model's first output — the classifier's;
    ``output_labels`` (the npz's ``labels__<output>``) name their output. :meth:`labels_for`
    joins them under output names."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    description: str = field(default="", compare=False)
    output_labels: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        counts = {len(v) for v in self.inputs.values()}
        if len(counts) != 1:
            raise ModelLoadError(f"data inputs disagree on the number of samples: {sorted(counts)}")
        n = counts.pop()
        for key, arr in self._label_arrays().items():
            if len(arr) != n:
                raise ModelLoadError(f"data {key} and inputs disagree on the number of samples ({len(arr)} vs {n})")

    def _label_arrays(self) -> dict[str, np.ndarray]:
        """Every label array under its npz name (``labels``, ``labels__<output>``)."""
        named = {LABELS_PREFIX + k: np.asarray(v) for k, v in self.output_labels.items()}
        return ({"labels": np.asarray(self.labels)} if self.labels is not None else {}) | named

    @property
    def has_labels(self) -> bool:
        return self.labels is not None or bool(self.output_labels)

    def labels_for(self, output_names: Sequence[str]) -> dict[str, np.ndarray]:
        """Labels keyed by output name, in the model's output order (plain ``labels`` under the
        first output). Labels naming no output, or given twice for the first, are refused."""
        unknown = sorted(set(self.output_labels) - set(output_names))
        if unknown:
            raise ModelLoadError(f"data has {LABELS_PREFIX}{unknown[0]} but the model has no output {unknown[0]!r}; "
                                 f"its outputs: {', '.join(output_names) or 'none'}")
        joined = dict(self.output_labels)
        if self.labels is not None:
            if not output_names:
                raise ModelLoadError("data has labels but the model has no outputs to judge them on")
            if output_names[0] in joined:
                raise ModelLoadError(f"data has both labels and {LABELS_PREFIX}{output_names[0]} (the same output); "
                                     "keep one")
            joined[output_names[0]] = self.labels
        return {n: np.asarray(joined[n]) for n in output_names if n in joined}

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, n: int | None) -> "Dataset":
        """The first ``n`` samples (all when ``n`` is None or larger than the set)."""
        if n is None or n >= len(self):
            return self
        return Dataset({k: v[:n] for k, v in self.inputs.items()},
                       None if self.labels is None else self.labels[:n], self.description,
                       {k: v[:n] for k, v in self.output_labels.items()})

    def subset(self, indices: Sequence[int], description: str | None = None) -> "Dataset":
        """The samples at ``indices`` (labels with them)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset({k: v[idx] for k, v in self.inputs.items()},
                       None if self.labels is None else np.asarray(self.labels)[idx],
                       self.description if description is None else description,
                       {k: np.asarray(v)[idx] for k, v in self.output_labels.items()})

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """Sample ``i`` as a batch of one: every array keeps a leading axis of 1."""
        return {k: v[i:i + 1] for k, v in self.inputs.items()}


#: a --data file larger than this is refused; its arrays are read into memory
MAX_DATA_BYTES = 8 << 30


def load_npz(path: str | Path, input_names: Sequence[str]) -> Dataset:
    """Read ``--data FILE.npz``: arrays named after the inputs (or ``x`` for a single input),
    optional ``labels`` (the first output's) and ``labels__<output>``; a bundle's ``golden.npz``
    is accepted too. The file is data: no pickles, numeric arrays only,
    every problem one :class:`ModelLoadError` naming the array."""
    p = Path(path)
    arrays = read_npz(p)
    labels = arrays.pop("labels", None)
    named = {k[len(LABELS_PREFIX):]: arrays.pop(k) for k in sorted(arrays) if k.startswith(LABELS_PREFIX)}
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
    label_arrays = ([("labels", labels)] if labels is not None else []) + [
        (LABELS_PREFIX + k, v) for k, v in named.items()]
    for name, arr in list(inputs.items()) + label_arrays:
        if arr.ndim == 0:
            raise ModelLoadError(f"data array {name!r} is a single value; the first axis must be the samples")
        if len(arr) == 0:
            raise ModelLoadError(f"data array {name!r} has no samples")
        if arr.dtype.kind not in "biuf":
            raise ModelLoadError(f"data array {name!r} is {arr.dtype}; only numeric arrays are accepted")
    return Dataset({k: _native(v) for k, v in inputs.items()}, None if labels is None else _native(labels),
                   p.name, {k: _native(v) for k, v in named.items()})


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an npz file, in the file's order: bounded by :data:`MAX_DATA_BYTES`, no
    pickles; the caller checks what the arrays must be."""
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
    return _read_arrays(p)


def _native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in this machine's byte order (a big-endian npz computes wrong otherwise)."""
    return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr


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
