"""TensorFlow / Keras sources: ``model.keras``, ``model.h5``, a SavedModel folder, or a factory's
``tf.keras.Model`` (or ``tf.function`` with an input signature).

Which Keras reads a file: Keras 3 (the ``keras`` package) loads both ``.keras`` and ``.h5``, with
``safe_mode=True`` and ``compile=False``. (tf_keras, Keras 2, deserializes a ``.h5`` Lambda layer's
marshalled bytecode, so it never reads user files here.) Before Keras sees a file, edgeport reads
its configuration as data and refuses code in it; a SavedModel is bounded and its serving graph
checked (:mod:`edgeport.tf_file_checks`). Either refusal is a ModelLoadError (exit 2).

TensorFlow is heavy and unsafe to fork once loaded: it is imported only for a TF source, with
``TF_ENABLE_ONEDNN_OPTS=0`` first. File sources are read in a child process (like conversions),
so the CLI's own process never loads TensorFlow; a factory's model lives in the caller's.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data import Dataset
from .errors import ModelLoadError, one_line
from .tf_file_checks import check_keras_config, file_digest, refuse_denied_ops, saved_model_digest

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
READ_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class TFModel:
    """A TensorFlow source: where it is, what it takes and returns (per-sample shapes at batch 1)."""

    kind: str                                    # "keras" | "saved_model" | "object"
    path: Path | None
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]
    outputs: tuple[str, ...]
    digest: str
    versions: tuple[tuple[str, str], ...]
    #: a SavedModel's signature output keys, in output order
    output_keys: tuple[str, ...] = ()
    obj: Any = field(default=None, compare=False, repr=False)


def is_tf_spec(spec: str) -> bool:
    p = Path(spec)
    return spec.lower().endswith(KERAS_SUFFIXES) or (p.is_dir() and (p / "saved_model.pb").is_file())


def is_tf_object(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow")


def prepare_tensorflow_env() -> None:
    """Environment settings that must be in place before TensorFlow is imported.

    oneDNN fuses LayerNorm into ``_MklLayerNorm``, which TF.js rejects and which makes numbers
    differ from what a phone computes; quiet TF's C++ logging.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # onnx2tf runs `onnxsim` as a command: make the one installed beside this Python findable.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    if "tensorflow" not in sys.modules:
        # TensorFlow's import prints absl/CUDA-probe lines straight to fd 2 whatever the log level
        from .native_logs import native_stderr

        with native_stderr():
            import tensorflow  # noqa: F401


def import_tensorflow() -> Any:
    prepare_tensorflow_env()  # TF_ENABLE_ONEDNN_OPTS=0 before the import
    import tensorflow as tf

    return tf


# -- loading ---------------------------------------------------------------------------------------
def load_tf_file(path: Path) -> TFModel:
    """Check ``path`` as data (no TensorFlow), then read its signature in a child process."""
    from .isolated_call import call_isolated

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():
        kind, digest = "saved_model", saved_model_digest(path)
    else:
        check_keras_config(path)
        kind, digest = "keras", file_digest(path)
    made = call_isolated(_describe_file, (kind, path), READ_TIMEOUT_S, f"TensorFlow (reading {path.name})",
                         converts=True)
    return TFModel(kind, path.resolve(), *made[:2], digest, made[2], output_keys=made[3])


def from_tf_object(obj: Any) -> TFModel:
    """A factory's Keras model or ``tf.function`` (TensorFlow is loaded: the factory made it)."""
    inputs, outputs = _describe(obj)
    h = hashlib.sha256(type(obj).__qualname__.encode())
    for v in getattr(obj, "weights", None) or getattr(obj, "variables", None) or ():
        h.update(np.asarray(v.numpy()).tobytes())
    h.update(repr((inputs, outputs)).encode())
    return TFModel("object", None, inputs, outputs, "sha256:" + h.hexdigest(), _versions(), obj=obj)


def _describe_file(kind: str, path: Path) -> tuple[Any, ...]:
    tf = import_tensorflow()
    if kind == "keras":
        model = load_keras(path)
        return (*_describe(model), _versions(), ())
    _, fn = _signature(tf, path)
    refuse_denied_ops(fn, path)
    specs = fn.structured_input_signature[1]
    keys = _ordered_keys(fn.structured_outputs)
    inputs = tuple((n, _static_shape(n, s.shape), s.dtype.name) for n, s in specs.items())
    return inputs, tuple(_output_name(k, i) for i, k in enumerate(keys)), _versions(), tuple(keys)


def load_keras(path: Path) -> Any:
    """A ``.keras`` / ``.h5`` file through Keras 3, safe mode, not compiled."""
    check_keras_config(path)
    import_tensorflow()
    import keras

    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelLoadError(f"Keras cannot load {path.name}: {type(exc).__name__}: {one_line(exc)}") from exc


def _signature(tf: Any, path: Path) -> tuple[Any, Any]:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a readable SavedModel: {one_line(exc)}") from exc
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if "serving_default" not in sigs:
        raise ModelLoadError(f"{path.name}: no 'serving_default' signature (it has: {', '.join(sigs) or 'none'})")
    return loaded, sigs["serving_default"]  # the caller keeps ``loaded``: it owns the variables


def serving_call(tfm: TFModel) -> Callable[[list[Any]], list[Any]]:
    """``call(inputs in input order) -> outputs in output order`` on the source model itself."""
    if tfm.kind == "object":
        return _object_caller(tfm.obj)
    tf = import_tensorflow()
    if tfm.kind == "keras":
        return _object_caller(load_keras(Path(tfm.path)))
    loaded, fn = _signature(tf, Path(tfm.path))
    names = [n for n, _, _ in tfm.inputs]

    def call(xs: list[Any], _owner: Any = loaded) -> list[Any]:
        outs = fn(**dict(zip(names, xs)))
        return [outs[k] for k in tfm.output_keys]
    return call


def reference_outputs(tfm: TFModel, data: Dataset) -> dict[str, np.ndarray]:
    """The source model's outputs on every sample, computed by TensorFlow (in a child process
    unless TensorFlow is loaded here already)."""
    from .isolated_call import call_isolated

    values = call_isolated(_reference, (tfm, data), READ_TIMEOUT_S, "TensorFlow (the source's reference run)",
                           converts=True)
    return dict(zip(tfm.outputs, values))


def _reference(tfm: TFModel, data: Dataset) -> list[np.ndarray]:
    tf = import_tensorflow()
    call = serving_call(tfm)
    names = [n for n, _, _ in tfm.inputs]
    dtypes = {n: d for n, _, d in tfm.inputs}
    for batch in (64, 1):  # a signature with a static batch of 1 runs one sample at a time
        try:
            parts: list[list[np.ndarray]] = [[] for _ in tfm.outputs]
            for start in range(0, len(data), batch):
                xs = [tf.constant(data.inputs[n][start:start + batch].astype(dtypes[n])) for n in names]
                for acc, out in zip(parts, call(xs)):
                    acc.append(np.asarray(out))
            return [np.concatenate(p) for p in parts]
        except Exception:
            if batch == 1:
                raise
    raise AssertionError("unreachable")


# -- what a model takes and returns ------------------------------------------------------------------
def _object_inputs(obj: Any) -> list[tuple[str, Any, Any]]:
    """(name, shape, dtype) of a Keras model's inputs, or of a tf.function's input signature."""
    sig = getattr(obj, "input_signature", None)
    if sig:
        return [(s.name or f"input_{i}", s.shape, s.dtype) for i, s in enumerate(sig)]
    try:
        tensors = list(obj.inputs or [])
    except Exception:
        tensors = []
    if not tensors:
        raise ModelLoadError("the TensorFlow model declares no inputs: build the Keras model with keras.Input(...), "
                             "or give the tf.function an input_signature")
    return [(str(t.name).split(":")[0], t.shape, t.dtype) for t in tensors]


def _object_caller(obj: Any) -> Callable[[list[Any]], list[Any]]:
    keras_model = hasattr(obj, "inputs") and not getattr(obj, "input_signature", None)
    as_dict = keras_model and isinstance(getattr(obj, "input", None), dict)
    names = [n for n, _, _ in _object_inputs(obj)]

    def call(xs: list[Any]) -> list[Any]:
        if keras_model:
            arg = dict(zip(names, xs)) if as_dict else (xs[0] if len(xs) == 1 else list(xs))
            out = obj(arg, training=False)
        else:
            out = obj(*xs)
        return [t for _, t in _flat_outputs(out)]
    return call


def _describe(obj: Any) -> tuple[tuple[tuple[str, tuple[int, ...], str], ...], tuple[str, ...]]:
    """(inputs, output names) of a Keras model or tf.function, by running it once on zeros."""
    import tensorflow as tf

    specs = _object_inputs(obj)
    inputs = tuple((n, _static_shape(n, s), np.dtype(getattr(d, "name", d)).name) for n, s, d in specs)
    out = obj(*[tf.zeros(s, d) for _, s, d in inputs]) if getattr(obj, "input_signature", None) else \
        _raw_keras_output(obj, [tf.zeros(s, d) for _, s, d in inputs])
    flat = _flat_outputs(out)
    layer_names = _keras_output_names(obj)
    if isinstance(out, dict):
        names = [k for k, _ in flat]
    elif layer_names and len(layer_names) == len(flat) and len(set(layer_names)) == len(flat):
        names = layer_names
    else:
        names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
    return inputs, tuple(names)


def _raw_keras_output(model: Any, xs: list[Any]) -> Any:
    names = [n for n, _, _ in _object_inputs(model)]
    arg = dict(zip(names, xs)) if isinstance(getattr(model, "input", None), dict) else (xs[0] if len(xs) == 1 else xs)
    return model(arg, training=False)


def _flat_outputs(out: Any) -> list[tuple[str, Any]]:
    if isinstance(out, dict):
        return [(str(k), v) for k, v in out.items()]
    if isinstance(out, (list, tuple)):
        return [(f"output_{i}", v) for i, v in enumerate(out)]
    return [("output", out)]


def _keras_output_names(model: Any) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return [str(n) for n in names]
    try:
        return [t._keras_history.operation.name for t in model.outputs]  # the layers that make them
    except Exception:
        return []


def _static_shape(name: str, shape: Any) -> tuple[int, ...]:
    dims = list(shape.as_list() if hasattr(shape, "as_list") else shape)
    if dims and dims[0] is None:
        dims[0] = 1  # exported at batch 1, as every source
    if any(d is None for d in dims):
        raise ModelLoadError(f"input {name!r} has an unknown dimension {dims}: edgeport exports static shapes; "
                             "give the model fixed input shapes (all but the batch axis)")
    return tuple(int(d) for d in dims)


def _ordered_keys(outputs: dict[str, Any]) -> list[str]:
    """Signature outputs in order: by a trailing number (``output_0``, ``output_1``...), then name."""
    def key(k: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", k)
        return (int(m.group(1)) if m else 0, k)
    return sorted(outputs, key=key)


def _output_name(key: str, index: int) -> str:
    return key if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key) else f"output_{index}"


def _versions() -> tuple[tuple[str, str], ...]:
    out = [("tensorflow", sys.modules["tensorflow"].__version__)]
    if "keras" in sys.modules:
        out.append(("keras", str(getattr(sys.modules["keras"], "__version__", "unknown"))))
    return tuple(out)
