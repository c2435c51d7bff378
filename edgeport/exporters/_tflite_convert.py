"""SavedModel -> .tflite with TensorFlow's own converter, one function per precision.

The onnx2tf SavedModel is first re-wrapped in a signature that (a) names inputs and outputs
after the source model, so the .tflite SignatureDef carries the user's names, and (b) takes int32
where the source takes int64 token ids: Android apps and the TFLite kernels/delegates work on
int32 ids, and NNAPI has no 64-bit integer tensors at all. The ids are cast back to int64 inside
the graph, so values are unchanged (ids beyond 2**31 do not exist in any vocabulary).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..data import Dataset
from ..errors import ConversionError, one_line


@dataclass(frozen=True)
class IOSpec:
    """What the TFLite signature takes: the source name, its dtype in the artifact and in TF."""

    name: str
    shape: tuple[int, ...]
    dtype: str          # dtype the .tflite takes (int64 ids become int32)
    sm_name: str        # the matching input name in the onnx2tf SavedModel
    sm_dtype: str       # its dtype there


def wrap_saved_model(sm_dir: Path, out_dir: Path, input_specs: Sequence[tuple[str, tuple[int, ...], str]],
                     output_names: Sequence[str]) -> list[IOSpec]:
    """Write a SavedModel at ``out_dir`` whose serving signature uses the source's names."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(sm_dir))
    fn = loaded.signatures["serving_default"]
    sm_inputs = fn.structured_input_signature[1]
    sm_outputs = _ordered_outputs(fn.structured_outputs)
    if len(sm_outputs) != len(output_names):
        raise ConversionError("tflite", "signature", f"the SavedModel has {len(sm_outputs)} outputs, "
                              f"the source {len(output_names)}")
    specs = []
    for i, (name, shape, dtype) in enumerate(input_specs):
        sm_name = _match_input(name, i, list(sm_inputs))
        sm_dtype = sm_inputs[sm_name].dtype.name
        want = "int32" if sm_dtype == "int64" else sm_dtype
        specs.append(IOSpec(name, tuple(shape), want, sm_name, sm_dtype))

    signature = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]

    def serve(*args: Any) -> dict[str, Any]:
        feeds = {s.sm_name: (tf.cast(a, s.sm_dtype) if s.dtype != s.sm_dtype else a)
                 for s, a in zip(specs, args)}
        outs = fn(**feeds)
        return {name: tf.identity(outs[key], name=name) for name, key in zip(output_names, sm_outputs)}

    module = tf.Module()
    module.loaded = loaded  # keeps the variables tracked for the save below
    module.serve = tf.function(serve, input_signature=signature)
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": module.serve})
    return specs


def _ordered_outputs(outputs: dict[str, Any]) -> list[str]:
    """onnx2tf names outputs ``output_0``, ``output_1``...: in ONNX order once sorted by number."""
    def key(k: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", k)
        return (int(m.group(1)) if m else 0, k)
    return sorted(outputs, key=key)


def _match_input(name: str, index: int, sm_names: list[str]) -> str:
    if name in sm_names:
        return name
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)
    for n in sm_names:
        if re.sub(r"[^A-Za-z0-9_]", "_", n) == clean:
            return n
    if index < len(sm_names):
        return sm_names[index]  # onnx2tf keeps ONNX input order
    raise ConversionError("tflite", "signature", f"input {name!r} has no counterpart in the SavedModel")


def convert(sm_dir: Path, precision: str, specs: Sequence[IOSpec], calibration: Dataset | None,
            calibration_samples: int, int8_io: str, allow_float_fallback: bool = False) -> bytes:
    """Run ``TFLiteConverter.from_saved_model`` for ``precision``; return the flatbuffer bytes.

    ``allow_float_fallback`` (int8 only) lets ops with no int8 kernel stay float instead of
    failing the conversion; the caller records it in the artifact's facts.
    """
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(sm_dir))
    # builtin ops only: an Android app without the Flex (select TF ops) library must run it
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "int8-dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("tflite", "SavedModel→TFLite (int8 calibration)",
                                  "full-integer int8 needs calibration data (--data FILE.npz)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _representative(calibration, specs, calibration_samples)
        conv.target_spec.supported_ops = (
            [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            if allow_float_fallback else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])
        if int8_io == "int8":
            # applies to float inputs/outputs only; integer token ids stay int32
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ConversionError("tflite", "precision", f"unsupported precision {precision!r}")
    from ..native_logs import native_stderr

    with native_stderr() as log:  # the MLIR quantizer prints its settings from C++
        try:
            return conv.convert()
        except Exception as exc:
            failure = exc
    raise ConversionError("tflite", f"SavedModel→TFLite ({precision})",
                          _converter_failure(failure, log.text)) from failure


def _representative(data: Dataset, specs: Sequence[IOSpec], n: int) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """Calibration samples keyed by signature input name: TF's calibrator matches a *list* by its
    own tensor order (which need not be the source's — a two-input model got one input's arrays
    in the other), a dict by name."""
    subset = data.take(n)

    def gen() -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(subset)):
            sample = subset.sample(i)
            yield {s.name: np.asarray(sample[s.name]).astype(s.dtype) for s in specs}
    return gen


def _converter_failure(exc: Exception, native: str) -> str:
    """TF's converter errors are pages of MLIR locations (and the reason may be only in what its
    C++ printed): a first line naming the problem, then all of it for the log and the hints."""
    text = f"{exc}\n{native}"
    select = re.search(r"TF Select ops: ([\w, ]+)", text)
    reasons = [ln.split("error:", 1)[1].strip() for ln in text.splitlines() if "error:" in ln]
    reasons = [r for r in reasons if r and not r.startswith("failed while converting")]
    if select:
        first = f"ops with no TFLite builtin kernel (TensorFlow Select ops only): {select.group(1).strip()}"
    elif reasons:
        first = reasons[0]
    else:
        first = f"{type(exc).__name__}: {one_line(exc)}"
    return f"{first[:300]}\n\n{type(exc).__name__}: {exc}\n\n{native[-4000:]}"
