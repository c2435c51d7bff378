"""``edgeport compare``: artifacts of any format, made by edgeport or anyone else, run on the same
inputs in their own runtimes (each in a child process bounded in time) and held against one
reference — the first artifact, another one, or an npz of stored reference outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .data import LABELS_PREFIX, read_npz
from .errors import ConfigError, EdgeportError, ModelLoadError, RuntimeLoadError, UnknownNameError
from .formats import format_for_path
from .precision import Precision
from .progress import SILENT, Progress
from .targets.tolerances import TOLERANCES, Tolerance
from .validation.comparison import Compared, Comparison, compare_outputs

#: the row pairs are judged with unless told: fp32's, the strictest — "these compute the same
#: function"; pass the precision a candidate was made at to judge a quantized one
DEFAULT_TOLERANCE = "fp32"

#: seconds one artifact's run may take (as for ``edgeport run``)
COMPARE_TIMEOUT_S = 600.0

#: in a bundle's golden.npz, the source model's outputs are stored under this prefix
_REFERENCE_PREFIX = "reference__"


def tolerance_row(name: str) -> Tolerance:
    """The tolerance table's row for a precision name; anything else is refused with the list."""
    try:
        return TOLERANCES[Precision.parse(name)]
    except (UnknownNameError, KeyError):
        raise UnknownNameError("tolerance", str(name), [p.value for p in TOLERANCES]) from None


def compare(artifacts: Sequence[str | Path], data: str | Path, reference: str | Path | None = None,
            tolerance: str = DEFAULT_TOLERANCE, timeout_s: float = COMPARE_TIMEOUT_S,
            progress: Progress | None = None) -> Comparison:
    """Run every artifact on ``data`` (an npz of inputs, first axis = samples) and compare each
    with the reference: ``reference`` when given (an artifact, or an npz of outputs keyed by
    output name, or a bundle's golden.npz), else the first artifact.

    Every input problem (fewer than two things, a missing or unreadable artifact, data that does
    not fit an artifact's inputs, an unknown tolerance) raises an :class:`EdgeportError`; a pair
    beyond tolerance does not — ``Comparison.passed`` says so, with every problem named."""
    progress = progress or SILENT
    limits = tolerance_row(tolerance)
    things = [str(a) for a in artifacts]
    if reference is not None:
        ref = str(reference)
        things = [ref] + [t for t in things if Path(t).resolve() != Path(ref).resolve()]
    if len(things) < 2:
        raise ConfigError(f"compare needs at least two things to compare (artifacts, or one artifact and "
                          f"--reference); got {len(things)}")
    if not timeout_s > 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout_s:g}")
    runtimes = {t: _runtime_for(t, allow_npz=reference is not None and i == 0) for i, t in enumerate(things)}
    read_npz(data)  # an unreadable data file (or stored reference) is refused before anything runs
    outputs = {things[0]: _stored_outputs(Path(things[0]))} if runtimes[things[0]] is None else {}
    for t in things:
        if runtimes[t] is None:
            continue
        with progress.step(f"{t}: run in {runtimes[t]}"):
            outputs[t] = _run(t, runtimes[t], Path(data), timeout_s)
    samples = min(len(v) for t in things[1:] for v in outputs[t].values())
    if runtimes[things[0]] is None:
        _check_samples(Path(things[0]), outputs[things[0]], samples)
    compared = [Compared(t, "npz" if runtimes[t] is None else format_for_path(Path(t)).name, runtimes[t],
                         {k: list(v.shape[1:]) for k, v in outputs[t].items()}) for t in things]
    pairs = tuple(compare_outputs(outputs[things[0]], outputs[t], limits, (things[0], t)) for t in things[1:])
    return Comparison(str(data), samples, Precision.parse(tolerance).value, limits, compared[0],
                      tuple(compared[1:]), pairs)


def _runtime_for(path: str, allow_npz: bool) -> str | None:
    """The artifact's default runtime (None: an npz of reference outputs)."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        if not allow_npz:
            raise ConfigError(f"{path} is an npz: only --reference may be stored outputs")
        return None
    if not p.exists():
        raise ModelLoadError(f"no such artifact: {path}")
    from .validation.runtimes import runtime_for_path

    return runtime_for_path(p)


def _run(path: str, runtime: str, data: Path, timeout_s: float) -> dict[str, np.ndarray]:
    from .recheck import run_artifact

    try:
        produced = run_artifact(path, data, runtime=runtime, timeout_s=timeout_s)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    except EdgeportError as exc:
        raise RuntimeLoadError(f"{path}: {exc}") from None
    if not produced:
        raise RuntimeLoadError(f"{path}: the artifact has no outputs")
    return produced


def _stored_outputs(path: Path) -> dict[str, np.ndarray]:
    """Reference outputs from an npz: its ``reference__<output>`` arrays when it has any (a
    bundle's golden.npz), else every array but labels. Untrusted like any data file."""
    arrays = read_npz(path)
    stored = {k[len(_REFERENCE_PREFIX):]: v for k, v in arrays.items() if k.startswith(_REFERENCE_PREFIX)}
    if not stored:
        stored = {k: v for k, v in arrays.items() if k != "labels" and not k.startswith(LABELS_PREFIX)}
    if not stored:
        raise ModelLoadError(f"reference {path.name} holds no outputs")
    for name, arr in stored.items():
        if arr.dtype.kind not in "biuf":
            raise ModelLoadError(f"reference {path.name}: array {name!r} is {arr.dtype}; "
                                 "only numeric arrays are accepted")
        if arr.ndim == 0:
            raise ModelLoadError(f"reference {path.name}: array {name!r} is a single value; "
                                 "the first axis must be the samples")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ModelLoadError(f"reference {path.name}: array {name!r} holds NaN or infinity")
    return stored


def _check_samples(path: Path, stored: dict[str, np.ndarray], samples: int) -> None:
    for name, arr in stored.items():
        if len(arr) != samples:
            raise ModelLoadError(f"reference {path.name}: array {name!r} has {len(arr)} samples, the data {samples}")
