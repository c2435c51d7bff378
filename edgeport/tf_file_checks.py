"""TensorFlow / Keras model files read as data before TensorFlow or Keras sees them.

A ``.keras`` / ``.h5`` file's model configuration is read here, bounded in size, and Lambda layers
(Python code) and objects from modules other than Keras's own (custom code) are refused. A
SavedModel folder is bounded in files and bytes and its links refused; its serving graph, once
TensorFlow has read it, must hold none of :data:`DENIED_OPS`.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, one_line

CONFIG_MAX_BYTES = 16 << 20
MODEL_MAX_BYTES = 4 << 30
MAX_FILES = 10_000
#: ops a serving graph has no business holding: file and checkpoint I/O, Python callbacks
DENIED_OPS = frozenset({
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TFRecordDataset",
    "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary",
    "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "LoadAndRemapMatrix"})


def check_keras_config(path: Path) -> None:
    """Read a .keras / .h5 file's model configuration (bounded) and refuse code in it."""
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if path.stat().st_size > MODEL_MAX_BYTES:
        raise ModelLoadError(f"{path.name} is larger than {MODEL_MAX_BYTES >> 30} GB")
    raw = _keras_zip_config(path) if zipfile.is_zipfile(path) else _h5_config(path)
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path.name}: its model configuration is not readable JSON: {one_line(exc)}") from None
    _refuse_code(config, path.name)


def _keras_zip_config(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if len(infos) > MAX_FILES or sum(i.file_size for i in infos) > MODEL_MAX_BYTES:
            raise ModelLoadError(f"{path.name}: the archive holds too many or too large members")
        if "config.json" not in z.namelist():
            raise ModelLoadError(f"{path.name} is not a Keras model archive (no config.json)")
        if z.getinfo("config.json").file_size > CONFIG_MAX_BYTES:
            raise ModelLoadError(f"{path.name}: config.json is larger than {CONFIG_MAX_BYTES >> 20} MB")
        with z.open("config.json") as f:
            data = f.read(CONFIG_MAX_BYTES + 1)
    if len(data) > CONFIG_MAX_BYTES:
        raise ModelLoadError(f"{path.name}: config.json is larger than {CONFIG_MAX_BYTES >> 20} MB")
    return data


def _h5_config(path: Path) -> bytes:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is neither a .keras archive nor a Keras HDF5 file: {one_line(exc)}") from None
    if raw is None:
        raise ModelLoadError(f"{path.name}: an HDF5 file without a model configuration (weights only?)")
    raw = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(raw) > CONFIG_MAX_BYTES:
        raise ModelLoadError(f"{path.name}: its model configuration is larger than {CONFIG_MAX_BYTES >> 20} MB")
    return raw


def _refuse_code(node: Any, where: str, depth: int = 0) -> None:
    if depth > 200:
        raise ModelLoadError(f"{where}: the model configuration is nested too deeply")
    if isinstance(node, dict):
        cls = node.get("class_name")
        if cls in ("Lambda", "TFOpLambda"):
            name = (node.get("config") or {}).get("name", "?") if isinstance(node.get("config"), dict) else "?"
            raise ModelLoadError(f"{where}: Lambda layer {name!r} holds Python code; edgeport reads models as data "
                                 "only (Keras safe mode) — replace it with a built-in layer or export a SavedModel")
        module = node.get("module")
        if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
            raise ModelLoadError(f"{where}: {cls or 'an object'} comes from module {module!r}, not Keras: custom code "
                                 "is not loaded from a file — pass the model through a file.py:factory instead")
        for v in node.values():
            _refuse_code(v, where, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _refuse_code(v, where, depth + 1)


def saved_model_digest(root: Path) -> str:
    """sha256 over every file of a SavedModel folder (paths and bytes), bounded and link-free."""
    files, total = [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise ModelLoadError(f"{root.name}: {p.relative_to(root)} is a symbolic link; links are not followed")
        for name in filenames:
            p = Path(dirpath) / name
            files.append(p)
            total += p.stat().st_size
            if len(files) > MAX_FILES or total > MODEL_MAX_BYTES:
                raise ModelLoadError(f"{root.name}: the SavedModel holds more than {MAX_FILES} files or "
                                     f"{MODEL_MAX_BYTES >> 30} GB")
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def file_digest(path: Path) -> str:
    h, seen = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            seen += len(block)
            if seen > MODEL_MAX_BYTES:
                raise ModelLoadError(f"{path.name} is larger than {MODEL_MAX_BYTES >> 30} GB")
            h.update(block)
    return "sha256:" + h.hexdigest()


def refuse_denied_ops(fn: Any, path: Path) -> None:
    graph = fn.graph.as_graph_def()
    ops = {n.op for n in graph.node}
    for f in graph.library.function:
        ops |= {n.op for n in f.node_def}
    bad = sorted(ops & DENIED_OPS)
    if bad:
        raise ModelLoadError(f"{path.name}: the serving graph holds {', '.join(bad)} (file, checkpoint or Python "
                             "ops); edgeport does not run such a graph")
