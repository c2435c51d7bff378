"""TensorFlow source -> CoreML ML Program with coremltools' own TensorFlow 2 frontend, from the
frozen SavedModel (the most direct path: no ONNX or torch hop).

coremltools 9 says it was tested with TensorFlow up to 2.12; with the installed 2.21 its TF2
frontend converted the Keras CNN and text models here exactly (the emulator judges every export,
so a drift would fail the run, not pass unseen). The facts record the versions.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConversionError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from .base import ExportJob

_STAGE = "TensorFlow→CoreML (coremltools TF2 frontend)"


def coremltools_with_tensorflow() -> Any:
    """coremltools with its TensorFlow frontend enabled. It decides at import whether TensorFlow is
    there; edgeport's torch path imports it with TensorFlow hidden (9 s saved), so a coremltools
    imported that way is imported afresh now that TensorFlow is loaded."""
    from ..tf_source import import_tensorflow
    from ._coreml_convert import import_coremltools

    import_tensorflow()
    ct = sys.modules.get("coremltools")
    if ct is not None and not getattr(getattr(ct, "_deps", None), "_HAS_TF_2", False):
        for name in [m for m in sys.modules if m == "coremltools" or m.startswith("coremltools.")]:
            del sys.modules[name]
    return import_coremltools()


def convert_tensorflow(job: "ExportJob", fp16: bool, deployment_target: str) -> tuple[Any, str]:
    """(MLModel with the source's input and output names, how it was captured)."""
    from ._tf_saved_model import canonical_saved_model, output_key

    tfm = job.source.tensorflow
    saved_model = canonical_saved_model(job)
    ct = coremltools_with_tensorflow()
    inputs = [ct.TensorType(name=n, shape=shape, dtype=np.float32 if np.dtype(d).kind == "f" else np.int32)
              for n, shape, d in tfm.inputs]
    try:
        mlmodel = ct.convert(str(saved_model), source="tensorflow", inputs=inputs, convert_to="mlprogram",
                             minimum_deployment_target=getattr(ct.target, deployment_target),
                             compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32)
    except Exception as exc:
        raise ConversionError("coreml", _STAGE, f"{type(exc).__name__}: {one_line(exc, last=True)}\n\n{exc}") from exc
    outputs = mlmodel._mil_program.functions["main"].outputs  # noqa: SLF001 - renamed in the program itself
    if len(outputs) != len(tfm.outputs):
        raise ConversionError("coreml", _STAGE, f"the program has {len(outputs)} outputs, the source {len(tfm.outputs)}")
    # the frontend lists outputs as TensorFlow flattens the signature's dict (by key) and names them
    # Identity, Identity_1...: renamed in the MIL program (which weight compression works on), then
    # the program is serialized again (FLOAT32 there: the FLOAT16 casts are already in it)
    by_key = sorted(range(len(tfm.outputs)), key=output_key)
    if [v.name for v in outputs] != [tfm.outputs[i] for i in by_key]:
        for v in outputs:  # a temporary name first: a new name may be another output's old one
            v.name = f"{v.name}__edgeport"
        for v, i in zip(outputs, by_key):
            v.name = tfm.outputs[i]
        try:
            mlmodel = ct.convert(mlmodel._mil_program, convert_to="mlprogram",  # noqa: SLF001
                                 minimum_deployment_target=getattr(ct.target, deployment_target),
                                 compute_precision=ct.precision.FLOAT32)
        except Exception as exc:
            raise ConversionError("coreml", f"{_STAGE}: naming the outputs", f"{type(exc).__name__}: {one_line(exc)}") from exc
    return mlmodel, f"coremltools {ct.__version__} TensorFlow 2 frontend (TensorFlow {dict(tfm.versions)['tensorflow']})"
