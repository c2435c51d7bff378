"""A TensorFlow source as the one SavedModel every TF path starts from.

Frozen (weights as constants) at batch 1, inputs named like the source's, outputs keyed
``output_0, output_1...`` in the source's order — the conventions of onnx2tf's SavedModels, so the
TFLite and TF.js exporters take it where they take onnx2tf's. Freezing matters: TFLiteConverter
kept a Keras 3 model's variables as ``READ_VARIABLE`` ops, which then ran uninitialised (every
output NaN); frozen, the same model converted exactly. Made once per call in the shared scratch
folder under the source's digest (every target and precision of one export reuse it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConversionError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from .base import ExportJob

_STAGE = "TensorFlow→SavedModel (frozen)"


def output_key(index: int) -> str:
    return f"output_{index}"


def canonical_saved_model(job: "ExportJob") -> Path:
    """The job's TensorFlow source as a frozen SavedModel folder (see the module docstring)."""
    from ..tf_source import import_tensorflow, serving_call

    tfm = job.source.tensorflow
    root = Path(job.shared_dir or job.workdir)
    dest = root / f"tf-frozen-{tfm.digest.rpartition(':')[2][:24]}"
    if (dest / "saved_model.pb").is_file():
        return dest
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = [tf.TensorSpec(shape, dtype, name=name) for name, shape, dtype in tfm.inputs]
    with job.progress.step(_STAGE):
        call = serving_call(tfm)

        def serve(*xs: Any) -> dict[str, Any]:
            return {output_key(i): out for i, out in enumerate(call(list(xs)))}

        try:
            frozen = convert_variables_to_constants_v2(tf.function(serve).get_concrete_function(*specs))
            module = tf.Module()
            module.serve = tf.function(lambda *xs: frozen(*xs), input_signature=specs)
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=".partial-tf-", dir=root))
            tf.saved_model.save(module, str(scratch / "sm"), signatures={"serving_default": module.serve})
        except Exception as exc:
            raise ConversionError("tensorflow", _STAGE, f"{type(exc).__name__}: {one_line(exc)}\n\n{exc}") from exc
        try:
            os.rename(scratch / "sm", dest)
        except OSError:  # another target published it first: its copy is as good
            pass
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest
