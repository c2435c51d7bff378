"""TF.js graph models as untrusted files: ``model.json`` read bounded and checked field by field,
weight shards confined to the model's folder and sized against the manifest, and the graph's
inputs/outputs (with edgeport's names from its metadata). Shared by the Node and Chromium
runtimes and the TF.js inspector."""
from __future__ import annotations

import json
import math
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...bounded_read import read_at_most
from ...errors import RuntimeLoadError, one_line

#: the key under model.json's userDefinedMetadata where edgeport records source names
#: a model.json holds the graph, not the weights: anything larger is refused unread
MAX_MODEL_JSON_BYTES = 64 << 20
# bytes per value in the weight shards, as TF.js decodes them (tfjs-core io DTYPE_VALUE_SIZE_MAP)
_WEIGHT_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8}
_QUANT_DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}
MAX_DIM = 2**31 - 1  # TF.js shapes are int32




@dataclass(frozen=True)
class WeightFile:
    """One weight shard that passed the confinement checks."""

    rel: str     # its path relative to the model folder, normalised, "/"-separated
    path: Path   # the file itself (symlinks resolved, inside the model folder)
    size: int


@dataclass(frozen=True)
class TFJSModel:
    """A model.json read within bounds, and the shards it names, each checked to be a regular file
    inside the model folder whose sizes add up to what the manifest's weights declare."""

    model_json: Path
    doc: dict[str, Any]
    shards: tuple[WeightFile, ...]
    weight_bytes: int


class Malformed(Exception):
    """A malformed model.json, reported as one RuntimeLoadError line by the public readers."""


def find_model_json(path: Path) -> Path:
    """``model.json`` itself, or a folder holding it (directly or under ``tfjs/``)."""
    p = Path(path)
    for cand in (p, p / "model.json", p / "tfjs" / "model.json"):
        if cand.is_file() and cand.suffix == ".json":
            return cand
    raise RuntimeLoadError(f"no TF.js model.json at {p}")


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def want(x: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``x`` if it has the JSON type ``kind`` (a boolean is not an integer), else Malformed."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(x, kinds) or (isinstance(x, bool) and bool not in kinds):
        want = " or ".join(_JSON_NAMES.get(k.__name__, k.__name__) for k in kinds)
        got = _JSON_NAMES.get(type(x).__name__, type(x).__name__)
        raise Malformed(f"{where} must be a {want}, not {got}")
    return x


_JSON_NAMES = {"dict": "JSON object", "list": "JSON array", "str": "string", "int": "integer",
               "NoneType": "null", "float": "number", "bool": "boolean"}


def read_model_json(model_json: Path) -> dict[str, Any]:
    """The model.json document, read at most :data:`MAX_MODEL_JSON_BYTES` and checked to be a
    graph model (topology nodes and weight manifest well-formed); anything else is a
    :class:`RuntimeLoadError`."""
    p = Path(model_json)
    try:
        with open(p, "rb") as f:
            raw = read_at_most(f, MAX_MODEL_JSON_BYTES)
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read {p.name}: {exc.strerror or type(exc).__name__}") from exc
    if raw is None:
        raise RuntimeLoadError(f"{p.name} is larger than {MAX_MODEL_JSON_BYTES >> 20} MB; "
                               "refused (a TF.js model.json holds the graph, not the weights)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise RuntimeLoadError(f"{p.name} is not JSON: {one_line(exc)}") from exc
    try:
        _check_doc(doc)
    except Malformed as exc:
        raise RuntimeLoadError(f"{p.name} is not a TF.js graph model.json: {exc}") from None
    return doc


def _check_doc(doc: Any) -> None:
    want(doc, dict, "the document")
    if doc.get("format") not in (None, "graph-model"):
        raise Malformed(f"it is a TF.js {str(doc.get('format'))[:40]!r} (only graph models run here)")
    topo = want(doc.get("modelTopology"), dict, "modelTopology")
    _check_nodes(want(topo.get("node"), list, "modelTopology.node"), "modelTopology.node")
    lib = want(topo.get("library", {}), dict, "modelTopology.library")
    for i, fn in enumerate(want(lib.get("function", []), list, "modelTopology.library.function")):
        want(fn, dict, f"library.function[{i}]")
        _check_nodes(want(fn.get("nodeDef", []), list, f"library.function[{i}].nodeDef"),
                     f"library.function[{i}].nodeDef")
    for gi, group in enumerate(want(doc.get("weightsManifest"), list, "weightsManifest")):
        where = f"weightsManifest[{gi}]"
        want(group, dict, where)
        for k, p in enumerate(want(group.get("paths"), list, f"{where}.paths")):
            want(p, str, f"{where}.paths[{k}]")
        for k, w in enumerate(want(group.get("weights"), list, f"{where}.weights")):
            _weight_bytes(w, f"{where}.weights[{k}]")
    for key in ("signature", "userDefinedMetadata"):
        want(doc.get(key) or {}, dict, key)


def _check_nodes(nodes: list[Any], where: str) -> None:
    for i, n in enumerate(nodes):
        want(n, dict, f"{where}[{i}]")
        want(n.get("name"), str, f"{where}[{i}].name")
        want(n.get("op", ""), str, f"{where}[{i}].op")
        for k, inp in enumerate(want(n.get("input", []), list, f"{where}[{i}].input")):
            want(inp, str, f"{where}[{i}].input[{k}]")
        want(n.get("attr", {}), dict, f"{where}[{i}].attr")


def _weight_bytes(w: Any, where: str) -> int:
    """The bytes one manifest entry occupies in its group's shards (TF.js decodeWeights' rule)."""
    want(w, dict, where)
    want(w.get("name"), str, f"{where}.name")
    shape = want(w.get("shape"), list, f"{where}.shape")
    n = 1
    for d in shape:
        if not is_int(d) or d < 0:
            raise Malformed(f"{where}.shape holds {str(d)[:20]!r}, not a size >= 0")
        n *= d
    dtype = want(w.get("dtype"), str, f"{where}.dtype")
    if dtype not in _WEIGHT_DTYPE_BYTES:
        raise Malformed(f"{where}.dtype {dtype[:20]!r} is not one of {', '.join(_WEIGHT_DTYPE_BYTES)} "
                   "(string weights are not loaded here)")
    quant = w.get("quantization")
    if quant is None:
        return n * _WEIGHT_DTYPE_BYTES[dtype]
    want(quant, dict, f"{where}.quantization")
    qdt = quant.get("dtype")
    if not isinstance(qdt, str) or qdt not in _QUANT_DTYPE_BYTES:
        raise Malformed(f"{where}.quantization.dtype {str(qdt)[:20]!r} is not uint8, uint16 or float16")
    if qdt == "float16" and dtype != "float32":
        raise Malformed(f"{where}: float16 quantization of a {dtype} weight")
    if qdt != "float16":
        if dtype not in ("float32", "int32"):
            raise Malformed(f"{where}: {qdt} quantization of a {dtype} weight")
        for k in ("min", "scale"):
            v = quant.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise Malformed(f"{where}.quantization.{k} must be a finite number")
    return n * _QUANT_DTYPE_BYTES[qdt]


def shard_rel_path(p: str) -> str:
    """A manifest path normalised to a "/"-separated path inside the model folder, or Malformed:
    absolute paths, ``..`` left after normalisation, backslashes, control characters and URL
    syntax (``%``, ``?``, ``#``, which a browser would decode or cut) are refused."""
    if not p or len(p) > 1024:
        raise Malformed(f"weight path {p[:60]!r} is empty or too long")
    if any(ord(c) < 32 or c in "\\%?#\x7f" for c in p):
        raise Malformed(f"weight path {p[:60]!r} holds a backslash, control character, '%', '?' or '#'")
    if p.startswith("/"):
        raise Malformed(f"weight path {p[:60]!r} is absolute")
    norm = posixpath.normpath(p)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise Malformed(f"weight path {p[:60]!r} leaves the model folder")
    return norm


def _confined_file(root: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """``root/rel`` with links resolved, if it exists: must stay inside ``root`` (already resolved)
    and be a regular file, else Malformed. None when nothing is there (a dangling link is refused)."""
    target = root / rel
    try:
        real = target.resolve(strict=True)
    except FileNotFoundError:
        if os.path.lexists(target):
            raise Malformed(f"weight file {rel!r} is a link to nothing") from None
        return None
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long...
        raise Malformed(f"weight file {rel!r} cannot be looked up: {exc.strerror or type(exc).__name__}") from None
    if not real.is_relative_to(root):
        raise Malformed(f"weight file {rel!r} is a link leading out of the model folder")
    try:
        st = real.stat()
    except OSError as exc:
        raise Malformed(f"weight file {rel!r} cannot be looked up: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise Malformed(f"weight file {rel!r} is not a regular file")
    return real, st


def check_weight_files(model_json: Path, doc: dict[str, Any], *,
                       allow_missing: bool = False) -> tuple[tuple[WeightFile, ...], list[str]]:
    """The shards a checked ``doc`` (from :func:`read_model_json`) names, confined to the model
    folder: relative paths that stay inside it after normalisation and after resolving symlinks,
    each a regular file; per manifest group, the shard sizes must add up to the bytes its weights
    declare (a shard that would exceed them is refused before the others are looked at). Nothing is
    read. With ``allow_missing`` absent shards are listed (second value) instead of refused, and
    their groups' sizes are not compared."""
    root = Path(model_json).parent.resolve()
    name = Path(model_json).name
    files: list[WeightFile] = []
    missing: list[str] = []
    try:
        for gi, group in enumerate(doc["weightsManifest"]):
            declared = sum(_weight_bytes(w, f"weightsManifest[{gi}].weights[{k}]")
                           for k, w in enumerate(group["weights"]))
            seen, complete = 0, True
            for p in group["paths"]:
                rel = shard_rel_path(p)
                found = _confined_file(root, rel)
                if found is None:
                    if not allow_missing:
                        raise Malformed(f"weight file {rel!r} does not exist")
                    missing.append(rel)
                    complete = False
                    continue
                real, st = found
                seen += st.st_size
                if seen > declared:
                    raise Malformed(f"weight files of group {gi} hold more bytes than its {len(group['weights'])} "
                               f"weights declare ({declared} B; {rel!r} reaches {seen} B)")
                files.append(WeightFile(rel, real, st.st_size))
            if complete and seen != declared:
                raise Malformed(f"weight files of group {gi} hold {seen} B but its weights declare {declared} B")
    except Malformed as exc:
        raise RuntimeLoadError(f"{name}: {exc}; refused") from None
    return tuple(files), missing


def open_model(path: Path, runtime: str) -> TFJSModel:
    """Find, read and check a TF.js graph model (see :func:`read_model_json` and
    :func:`check_weight_files`) before ``runtime`` is started; refused as RuntimeLoadError
    naming the runtime."""
    try:
        model_json = find_model_json(Path(path))
        doc = read_model_json(model_json)
        shards, _ = check_weight_files(model_json, doc)
    except RuntimeLoadError as exc:
        raise RuntimeLoadError(f"{runtime}: {exc}") from None
    return TFJSModel(model_json, doc, shards, sum(s.size for s in shards))
