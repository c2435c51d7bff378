"""ONNX -> TensorFlow SavedModel through onnx2tf, shared by the TFLite and TF.js exporters.

onnx2tf is powerful but hostile to library use: it calls ``sys.exit``, prints pages of logs,
shells out to an ``onnxsim`` command it expects on PATH, swallows SavedModel write errors, and for
NHWC 3-channel image inputs tries to download a sample file. This module wraps all of that so the
callers get a SavedModel directory or a one-line :class:`ConversionError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TYPE_CHECKING

from ..errors import ConversionError, MissingDependencyError
from ..native_logs import keep_in_log
from ..tf_source import prepare_tensorflow_env

if TYPE_CHECKING:  # pragma: no cover
    from ..progress import Progress

# onnx2tf's calibration/test helper looks for this file in the working directory before it
# downloads one; a zero-filled stand-in keeps every conversion offline.
_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_STAGE = "ONNX→SavedModel (onnx2tf)"

# Converting the same ONNX twice (TFLite fp32 then int8, TFLite and TF.js for `--target all`, the
# candidates of a sweep) reuses the first SavedModel, kept in the call's cache folder under the
# ONNX file's digest: onnx2tf costs 5 s to 2 min per model. Exporters run in forked children, so the
# cache lives on disk, never in a process's memory.
_CACHE_PREFIX = "savedmodel-"


def onnx_to_saved_model(onnx_path: Path, out_dir: Path, *, keep_nchw: bool = True,
                        progress: "Progress | None" = None, cache_dir: Path | None = None) -> Path:
    """Convert ``onnx_path`` to a TF SavedModel written at ``out_dir`` (created); return ``out_dir``.

    ``keep_nchw`` keeps 3-5-D inputs in the ONNX (channels-first) layout so the artifact takes
    the same arrays as the source model; onnx2tf transposes them to NHWC otherwise. The
    SavedModel's ``serving_default`` signature names its inputs after the ONNX inputs (onnx2tf may
    sanitise characters such as ``:`` or ``/``); outputs are named by onnx2tf, in ONNX order.
    """
    prepare_tensorflow_env()
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    cached = Path(cache_dir) / (_CACHE_PREFIX + _cache_key(onnx_path, keep_nchw)) if cache_dir else None
    if cached is not None and (cached / "saved_model.pb").is_file():
        _replace_dir(cached, out_dir)
        return out_dir

    try:
        import onnx
        import onnx2tf  # noqa: F401  (imports TensorFlow)
    except ImportError as exc:
        raise MissingDependencyError("onnx2tf", extra="tflite",
                                     hint=f"import failed: {exc}") from exc

    model = onnx.load(str(onnx_path))
    keep, as_is = _input_layouts(model)

    cm = progress.step(_STAGE) if progress else contextlib.nullcontext()
    with cm, tempfile.TemporaryDirectory(prefix="edgeport-onnx2tf-") as scratch:
        scratch_p = Path(scratch)
        # onnx2tf rewrites its input file in place (onnxsim): give it a copy
        work_onnx = scratch_p / "model.onnx"
        shutil.copyfile(onnx_path, work_onnx)
        _write_sample_stand_in(scratch_p / _SAMPLE_FILE)
        sm_dir = scratch_p / "saved_model"
        log = io.StringIO()
        old_cwd = os.getcwd()
        try:
            os.chdir(scratch_p)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                _reset_keras_names()
                keras_model = onnx2tf.convert(
                    input_onnx_file_path=str(work_onnx),
                    output_folder_path=str(scratch_p / "onnx2tf-out"),
                    keep_ncw_or_nchw_or_ncdhw_input_names=(keep or None) if keep_nchw else None,
                    keep_shape_absolutely_input_names=(as_is or None) if keep_nchw else None,
                    output_signaturedefs=True,
                    disable_model_save=True,
                    verbosity="error",
                )
                _write_saved_model(keras_model, sm_dir)
        except SystemExit as exc:
            raise ConversionError("tensorflow", _STAGE, _last_line(log.getvalue()) or
                                  f"onnx2tf exited with status {exc.code}") from None
        except Exception as exc:
            raise ConversionError("tensorflow", _STAGE, f"{type(exc).__name__}: {exc}") from exc
        finally:
            os.chdir(old_cwd)
            keep_in_log(log.getvalue())  # onnx2tf's own log, into the target's log file
        if not (sm_dir / "saved_model.pb").is_file():
            # onnx2tf logs SavedModel write errors and carries on; an empty folder is a failure
            raise ConversionError("tensorflow", _STAGE,
                                  _last_line(log.getvalue()) or "no saved_model.pb was written")
        _replace_dir(sm_dir, out_dir)
        if cached is not None:
            _publish(sm_dir, cached)
    return out_dir


def _reset_keras_names() -> None:
    """Keras numbers the models and layers one process builds (``model``, ``model_1``, ...) and
    the numbers become tensor names in the SavedModel and in every file made from it: without a
    reset, the same model converted later in a process makes a file a few bytes longer. A reset
    makes each conversion byte-identical whatever ran before it."""
    import tf_keras

    tf_keras.backend.clear_session()


def _write_saved_model(keras_model: Any, sm_dir: Path) -> None:
    """The Keras model onnx2tf built, as a SavedModel whose ``serving_default`` takes the model's
    inputs by name. onnx2tf's own saving would also convert the model to two .tflite files edgeport
    never reads (more than half of its time on an unrolled recurrent model), so it is asked for the
    model only and the SavedModel is written here."""
    import tensorflow as tf
    import tf_keras

    if keras_model is None:
        return  # the caller names the failure from onnx2tf's log
    archive = tf_keras.export.ExportArchive()
    archive.add_endpoint(
        name="serving_default",
        fn=lambda *inputs: keras_model(inputs),
        input_signature=[tf.TensorSpec(t.shape, t.dtype, t.name) for t in keras_model.inputs],
    )
    archive.write_out(str(sm_dir))


#: ops that read their input's axis 1 as channels: an input they consume is channels-first (NCW,
#: NCHW, NCDHW); any other rank-3..5 input (a [batch, time, features] sequence for a GRU or
#: attention) must keep its shape exactly — read as channels-first it would be transposed,
#: silently when the two axes happen to be equal
_CHANNEL_OPS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
                          "BatchNormalization", "InstanceNormalization", "LpPool", "Resize", "Upsample",
                          "DepthToSpace", "SpaceToDepth", "PRelu"})


def _input_layouts(model: Any) -> tuple[list[str], list[str]]:
    """(channels-first inputs, inputs to keep exactly as they are), decided from the graph: what
    consumes each rank-3..5 input, through shape-preserving ops (Cast, Identity, Mul/Add by a
    constant...)."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    passthrough = {"Cast", "Identity", "Mul", "Add", "Sub", "Div", "Relu", "Clip", "Neg", "Abs"}

    def reaches_channel_op(name: str, depth: int = 0) -> bool:
        for node in consumers.get(name, []):
            if node.op_type in _CHANNEL_OPS:
                return True
            if node.op_type in passthrough and depth < 4 and any(reaches_channel_op(o, depth + 1) for o in node.output):
                return True
        return False

    channels_first, as_is = [], []
    for vi in graph.input:
        if vi.name in inits or not 3 <= len(vi.type.tensor_type.shape.dim) <= 5:
            continue
        (channels_first if reaches_channel_op(vi.name) else as_is).append(vi.name)
    return channels_first, as_is


def _cache_key(onnx_path: Path, keep_nchw: bool) -> str:
    h = hashlib.sha256(onnx_path.read_bytes())
    h.update(b"nchw" if keep_nchw else b"nhwc")
    h.update(b"layout-from-graph")  # inputs are read channels-first only when a channel op consumes them
    return h.hexdigest()[:32]


def _publish(src: Path, cached: Path) -> None:
    """Copy ``src`` into the cache as ``cached``, atomically: a copy is made beside it and renamed,
    so a reader (another target, another process sharing the folder) sees all of it or nothing."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=cached.parent))
    try:
        shutil.copytree(src, partial / "sm")
        os.rename(partial / "sm", cached)
    except OSError:
        pass  # another export published the same digest first; its copy is as good
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)


def _write_sample_stand_in(path: Path) -> None:
    import numpy as np

    np.save(path, np.zeros((20, 128, 128, 3), dtype=np.float32))


def _last_line(text: str) -> str:
    """The last meaningful log line (onnx2tf colours its output with ANSI codes)."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not set(ln) <= set("=-")]
    return lines[-1][:300] if lines else ""
