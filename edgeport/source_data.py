"""The data a source is judged on: the user's arrays checked against its inputs, the golden inputs
(the user's data, else seeded random inputs) and the source model's own outputs on them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset, check_against, load_npz
from .errors import ModelLoadError
from .source import ModelSource
from .source_specs import load_source

#: golden inputs kept in a bundle are capped at this many raw bytes (first samples kept)
GOLDEN_MAX_BYTES = 48 * 1024 * 1024
RANDOM_SAMPLES = 32
#: seconds ``edgeport run`` and an ONNX source's reference run may take (profiles set their own)
RUN_TIMEOUT_S = 600.0


def golden_inputs(source: ModelSource) -> tuple[Dataset, str]:
    """The inputs parity is judged on: the user's/sample's data, else seeded random inputs."""
    if source.eval_data is not None:
        data = source.eval_data
        per_sample = sum(v[0].nbytes for v in data.inputs.values()) or 1
        kept = data.take(max(1, GOLDEN_MAX_BYTES // per_sample))
        desc = data.description or "eval data"
        if len(kept) < len(data):
            desc += (f" — the first {len(kept)} of {len(data)} samples: golden inputs are capped at "
                     f"{GOLDEN_MAX_BYTES >> 20} MB")
        return kept, desc
    rng = np.random.default_rng(0)
    inputs = {}
    for spec, ex in zip(source.input_specs, source.example_inputs):
        shape = (RANDOM_SAMPLES,) + tuple(spec.shape[1:])
        if ex.dtype.kind in "iu":
            inputs[spec.name] = rng.integers(0, max(int(ex.max()), 1) + 1, size=shape).astype(ex.dtype)
        elif ex.dtype.kind == "b":
            inputs[spec.name] = np.ones(shape, dtype=ex.dtype)
        else:
            inputs[spec.name] = rng.standard_normal(shape).astype(ex.dtype)
    return Dataset(inputs, None, "random"), (f"{RANDOM_SAMPLES} seeded random inputs — pass --data "
                                             "with real inputs: random ones hide real divergence")


def checked_data(source: ModelSource, data: str | Path | Dataset) -> Dataset:
    """``data`` (an .npz path, read as untrusted, or a Dataset) checked against the source's
    inputs: every input there, with the source's shape and dtype."""
    ds = data if isinstance(data, Dataset) else load_npz(data, source.input_names)
    check_against(ds, [(s.name, s.shape, s.dtype) for s in source.input_specs])
    return ds


def prepare_source(model: str | ModelSource, data: str | Path | Dataset | None) -> ModelSource:
    source = load_source(model) if isinstance(model, str) else model
    return source if data is None else source.with_data(checked_data(source, data))


def reference_outputs(source: ModelSource, data: Dataset, module: Any | None = None) -> dict[str, np.ndarray]:
    """The source model's outputs on ``data``: its torch module (or ``module``), or for an ONNX
    source the same onnxruntime session edgeport judges with (in a child process, like every
    runtime run). Outputs that are not finite are refused: parity cannot be judged against them."""
    if module is not None or source.module is not None:
        outputs = source.reference(data, module)
    elif source.tensorflow is not None:  # TensorFlow itself, in a child unless it is loaded here
        from .tf_source import reference_outputs as tf_reference

        outputs = tf_reference(source.tensorflow, data)
    else:
        from .isolated_call import call_isolated

        values = call_isolated(_onnx_outputs, (Path(source.onnx_path), data), RUN_TIMEOUT_S,
                               "onnxruntime (the ONNX source's reference run)")
        outputs = dict(zip(source.output_names, values))
    for name, arr in outputs.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr.reshape(len(arr), -1))).any(1).argmax())
            raise ModelLoadError(f"the source model's output {name!r} is NaN or infinite (first on sample {bad}); "
                                 "parity cannot be judged against it — check the model and the inputs")
    return outputs


def _onnx_outputs(path: Path, data: Dataset) -> list[np.ndarray]:
    from .validation.runtimes import get_runtime

    session = get_runtime("onnxruntime").load(path)
    try:
        return list(session.predict(data).values())
    finally:
        session.close()
