"""Real TF.js in Node: ``tfjs-node`` (wasm backend, the one pages use) and ``tfjs-node-cpu``
(the pure-JavaScript cpu backend).

One Node process per loaded model runs ``tfjs_js/node_runner.js`` (shipped in the package, npm
packages from its committed lockfile). Python talks to it with JSON lines; tensors go through
files. Every sample of a prediction is run in that process, one at a time, and latency is timed
inside it with ``performance.now``. Every call is bounded by ``timeout_s``: a hung or crashed
runner is stopped and reported as a :class:`RuntimeLoadError`, never waited on forever.

The model.json reading and input/output packing here are shared with the Chromium runtime.
"""
from __future__ import annotations

import json
import math
import os
import posixpath
import queue
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import weakref
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, TensorSpec
from ...errors import ConfigError, MissingDependencyError, RuntimeLoadError, one_line
from .base import Runtime, Session, Timing

RUNNER_DIR = Path(__file__).parent / "tfjs_js"
DEFAULT_TIMEOUT_S = 120.0
#: the key under model.json's userDefinedMetadata where edgeport records source names
METADATA_KEY = "edgeport"
#: a model.json holds the graph, not the weights: anything larger is refused unread
MAX_MODEL_JSON_BYTES = 64 << 20
# bytes per value in the weight shards, as TF.js decodes them (tfjs-core io DTYPE_VALUE_SIZE_MAP)
_WEIGHT_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8}
_QUANT_DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}
_MAX_DIM = 2**31 - 1  # TF.js shapes are int32
#: test hook: the JS side stops answering at this command (a busy loop); honoured only when set
TEST_HANG_ENV = "EDGEPORT_TFJS_TEST_HANG"

_DT = {"DT_FLOAT": "float32", "DT_HALF": "float32", "DT_DOUBLE": "float32", "DT_INT32": "int32",
       "DT_INT64": "int64", "DT_INT16": "int32", "DT_INT8": "int32", "DT_UINT8": "int32", "DT_BOOL": "bool"}
# TF.js tensors are float32, int32 or bool: int64 token ids are served as int32
_TFJS_DTYPE = {"float32": "float32", "int32": "int32", "int64": "int32", "bool": "bool"}
_NP = {"float32": np.float32, "int32": np.int32, "bool": np.uint8}


@dataclass(frozen=True)
class GraphIO:
    """A graph model's inputs and outputs: user-facing names, the keys TF.js is fed/asked with."""

    inputs: tuple[TensorSpec, ...]   # dtype as the graph declares it (int64 ids stay int64)
    input_keys: tuple[str, ...]
    output_names: tuple[str, ...]
    output_keys: tuple[str, ...]


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


class _Bad(Exception):
    """A malformed model.json, reported as one RuntimeLoadError line by the public readers."""


def find_model_json(path: Path) -> Path:
    """``model.json`` itself, or a folder holding it (directly or under ``tfjs/``)."""
    p = Path(path)
    for cand in (p, p / "model.json", p / "tfjs" / "model.json"):
        if cand.is_file() and cand.suffix == ".json":
            return cand
    raise RuntimeLoadError(f"no TF.js model.json at {p}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _want(x: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``x`` if it has the JSON type ``kind`` (a boolean is not an integer), else _Bad."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(x, kinds) or (isinstance(x, bool) and bool not in kinds):
        want = " or ".join(_JSON_NAMES.get(k.__name__, k.__name__) for k in kinds)
        got = _JSON_NAMES.get(type(x).__name__, type(x).__name__)
        raise _Bad(f"{where} must be a {want}, not {got}")
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
            # refused unread when too large; a file growing meanwhile is cut at the limit + 1
            big = os.fstat(f.fileno()).st_size > MAX_MODEL_JSON_BYTES
            raw = b"" if big else f.read(MAX_MODEL_JSON_BYTES + 1)
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read {p.name}: {exc.strerror or type(exc).__name__}") from exc
    if big or len(raw) > MAX_MODEL_JSON_BYTES:
        raise RuntimeLoadError(f"{p.name} is larger than {MAX_MODEL_JSON_BYTES >> 20} MB; "
                               "refused (a TF.js model.json holds the graph, not the weights)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise RuntimeLoadError(f"{p.name} is not JSON: {one_line(exc)}") from exc
    try:
        _check_doc(doc)
    except _Bad as exc:
        raise RuntimeLoadError(f"{p.name} is not a TF.js graph model.json: {exc}") from None
    return doc


def _check_doc(doc: Any) -> None:
    _want(doc, dict, "the document")
    if doc.get("format") not in (None, "graph-model"):
        raise _Bad(f"it is a TF.js {str(doc.get('format'))[:40]!r} (only graph models run here)")
    topo = _want(doc.get("modelTopology"), dict, "modelTopology")
    _check_nodes(_want(topo.get("node"), list, "modelTopology.node"), "modelTopology.node")
    lib = _want(topo.get("library", {}), dict, "modelTopology.library")
    for i, fn in enumerate(_want(lib.get("function", []), list, "modelTopology.library.function")):
        _want(fn, dict, f"library.function[{i}]")
        _check_nodes(_want(fn.get("nodeDef", []), list, f"library.function[{i}].nodeDef"),
                     f"library.function[{i}].nodeDef")
    for gi, group in enumerate(_want(doc.get("weightsManifest"), list, "weightsManifest")):
        where = f"weightsManifest[{gi}]"
        _want(group, dict, where)
        for k, p in enumerate(_want(group.get("paths"), list, f"{where}.paths")):
            _want(p, str, f"{where}.paths[{k}]")
        for k, w in enumerate(_want(group.get("weights"), list, f"{where}.weights")):
            _weight_bytes(w, f"{where}.weights[{k}]")
    for key in ("signature", "userDefinedMetadata"):
        _want(doc.get(key) or {}, dict, key)


def _check_nodes(nodes: list[Any], where: str) -> None:
    for i, n in enumerate(nodes):
        _want(n, dict, f"{where}[{i}]")
        _want(n.get("name"), str, f"{where}[{i}].name")
        _want(n.get("op", ""), str, f"{where}[{i}].op")
        for k, inp in enumerate(_want(n.get("input", []), list, f"{where}[{i}].input")):
            _want(inp, str, f"{where}[{i}].input[{k}]")
        _want(n.get("attr", {}), dict, f"{where}[{i}].attr")


def _weight_bytes(w: Any, where: str) -> int:
    """The bytes one manifest entry occupies in its group's shards (TF.js decodeWeights' rule)."""
    _want(w, dict, where)
    _want(w.get("name"), str, f"{where}.name")
    shape = _want(w.get("shape"), list, f"{where}.shape")
    n = 1
    for d in shape:
        if not _is_int(d) or d < 0:
            raise _Bad(f"{where}.shape holds {str(d)[:20]!r}, not a size >= 0")
        n *= d
    dtype = _want(w.get("dtype"), str, f"{where}.dtype")
    if dtype not in _WEIGHT_DTYPE_BYTES:
        raise _Bad(f"{where}.dtype {dtype[:20]!r} is not one of {', '.join(_WEIGHT_DTYPE_BYTES)} "
                   "(string weights are not loaded here)")
    quant = w.get("quantization")
    if quant is None:
        return n * _WEIGHT_DTYPE_BYTES[dtype]
    _want(quant, dict, f"{where}.quantization")
    qdt = quant.get("dtype")
    if not isinstance(qdt, str) or qdt not in _QUANT_DTYPE_BYTES:
        raise _Bad(f"{where}.quantization.dtype {str(qdt)[:20]!r} is not uint8, uint16 or float16")
    if qdt == "float16" and dtype != "float32":
        raise _Bad(f"{where}: float16 quantization of a {dtype} weight")
    if qdt != "float16":
        if dtype not in ("float32", "int32"):
            raise _Bad(f"{where}: {qdt} quantization of a {dtype} weight")
        for k in ("min", "scale"):
            v = quant.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _Bad(f"{where}.quantization.{k} must be a finite number")
    return n * _QUANT_DTYPE_BYTES[qdt]


def shard_rel_path(p: str) -> str:
    """A manifest path normalised to a "/"-separated path inside the model folder, or _Bad:
    absolute paths, ``..`` left after normalisation, backslashes, control characters and URL
    syntax (``%``, ``?``, ``#``, which a browser would decode or cut) are refused."""
    if not p or len(p) > 1024:
        raise _Bad(f"weight path {p[:60]!r} is empty or too long")
    if any(ord(c) < 32 or c in "\\%?#\x7f" for c in p):
        raise _Bad(f"weight path {p[:60]!r} holds a backslash, control character, '%', '?' or '#'")
    if p.startswith("/"):
        raise _Bad(f"weight path {p[:60]!r} is absolute")
    norm = posixpath.normpath(p)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise _Bad(f"weight path {p[:60]!r} leaves the model folder")
    return norm


def _confined_file(root: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """``root/rel`` with links resolved, if it exists: must stay inside ``root`` (already resolved)
    and be a regular file, else _Bad. None when nothing is there (a dangling link is refused)."""
    target = root / rel
    try:
        real = target.resolve(strict=True)
    except FileNotFoundError:
        if os.path.lexists(target):
            raise _Bad(f"weight file {rel!r} is a link to nothing") from None
        return None
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long...
        raise _Bad(f"weight file {rel!r} cannot be looked up: {exc.strerror or type(exc).__name__}") from None
    if not real.is_relative_to(root):
        raise _Bad(f"weight file {rel!r} is a link leading out of the model folder")
    try:
        st = real.stat()
    except OSError as exc:
        raise _Bad(f"weight file {rel!r} cannot be looked up: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Bad(f"weight file {rel!r} is not a regular file")
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
                        raise _Bad(f"weight file {rel!r} does not exist")
                    missing.append(rel)
                    complete = False
                    continue
                real, st = found
                seen += st.st_size
                if seen > declared:
                    raise _Bad(f"weight files of group {gi} hold more bytes than its {len(group['weights'])} "
                               f"weights declare ({declared} B; {rel!r} reaches {seen} B)")
                files.append(WeightFile(rel, real, st.st_size))
            if complete and seen != declared:
                raise _Bad(f"weight files of group {gi} hold {seen} B but its weights declare {declared} B")
    except _Bad as exc:
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


def _dims(shape: Any, where: str) -> tuple[int, ...]:
    if shape is None:
        return ()
    _want(shape, dict, where)
    if shape.get("unknownRank"):
        return ()
    dims = []
    for d in _want(shape.get("dim", []), list, f"{where}.dim"):
        size = _want(d, dict, f"{where}.dim[]").get("size", -1)
        if isinstance(size, str) and re.fullmatch(r"-?[0-9]{1,12}", size.strip()):
            size = int(size)
        if not _is_int(size) or not -1 <= size <= _MAX_DIM:
            raise _Bad(f"{where} holds a dimension {str(size)[:20]!r}")
        dims.append(size)
    return tuple(dims)


def _dtype(tf_dtype: Any) -> str:
    return _DT.get(tf_dtype, "float32") if isinstance(tf_dtype, str) or tf_dtype is None else "float32"


def read_graph_io(model_json: Path, doc: dict[str, Any] | None = None) -> GraphIO:
    """Inputs/outputs from model.json (``doc`` if already read): its signature, renamed by
    edgeport's metadata if present; graphs without a signature fall back to their Placeholder nodes
    and unconsumed nodes."""
    if doc is None:
        doc = read_model_json(model_json)
    try:
        return _graph_io(doc)
    except _Bad as exc:
        raise RuntimeLoadError(f"{Path(model_json).name} is not a TF.js graph model.json: {exc}") from None


def _graph_io(doc: dict[str, Any]) -> GraphIO:
    nodes = doc["modelTopology"]["node"]
    sig = doc.get("signature") or {}
    in_items: list[tuple[str, str, tuple[int, ...]]] = []
    if sig.get("inputs"):
        for k, v in _want(sig["inputs"], dict, "signature.inputs").items():
            _want(v, dict, f"signature.inputs[{k[:40]!r}]")
            in_items.append((k, _dtype(v.get("dtype")), _dims(v.get("tensorShape"), f"signature.inputs[{k[:40]!r}]")))
    else:
        for n in nodes:
            if n.get("op") == "Placeholder":
                attr = n.get("attr") or {}
                dt = attr.get("dtype") if isinstance(attr.get("dtype"), dict) else {}
                shp = attr.get("shape") if isinstance(attr.get("shape"), dict) else {}
                in_items.append((n["name"], _dtype(dt.get("type")), _dims(shp.get("shape"), f"node {n['name'][:40]!r}")))
    if sig.get("outputs"):
        out_keys = list(_want(sig["outputs"], dict, "signature.outputs"))
    else:
        consumed = {i.split(":")[0].lstrip("^") for n in nodes for i in n.get("input", [])}
        out_keys = [n["name"] for n in nodes if n["name"] not in consumed
                    and n.get("op") not in ("Const", "NoOp", "Placeholder")]
    meta = _want((doc.get("userDefinedMetadata") or {}).get(METADATA_KEY) or {}, dict, "userDefinedMetadata.edgeport")
    names: dict[str, dict[str, str]] = {}
    for side in ("inputs", "outputs"):
        names[side] = {}
        for i, m in enumerate(_want(meta.get(side, []), list, f"userDefinedMetadata.edgeport.{side}")):
            _want(m, dict, f"userDefinedMetadata.edgeport.{side}[{i}]")
            names[side][_want(m.get("key"), str, f"edgeport.{side}[{i}].key")] = \
                _want(m.get("name"), str, f"edgeport.{side}[{i}].name")
    if names["outputs"]:  # edgeport recorded the source order
        order = [k for k in names["outputs"] if k in out_keys]
        out_keys = order + [k for k in out_keys if k not in order]
    specs = tuple(TensorSpec(names["inputs"].get(k, k), shape, dt) for k, dt, shape in in_items)
    return GraphIO(specs, tuple(k for k, _, _ in in_items),
                   tuple(names["outputs"].get(k, k) for k in out_keys), tuple(out_keys))


class TFJSSessionBase(Session):
    """What the Node and Chromium sessions share: packing inputs, unpacking outputs, timing."""

    backend: str = "wasm"

    def __init__(self, model: TFJSModel, threads: int, timeout_s: float):
        self.model = model
        self.model_json = model.model_json
        self.io = read_graph_io(model.model_json, model.doc)
        self.input_specs = self.io.inputs
        self.output_names = self.io.output_names
        self.threads = threads
        self.timeout_s = float(timeout_s)
        self.info: dict[str, Any] = {}
        self._tmp = tempfile.mkdtemp(prefix="edgeport-tfjs-io-")
        self._calls = 0

    # -- transport, per runtime ----------------------------------------------------------------
    @abstractmethod
    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one command to the JS side and return its answer (bounded by timeout_s)."""

    @abstractmethod
    def _input_ref(self, path: Path) -> dict[str, str]:
        """How the JS side finds an input file."""

    @abstractmethod
    def _output_array(self, out: dict[str, Any]) -> np.ndarray:
        """The flat bytes of one answered output, as a 1-D array of its dtype."""

    # -- Session API ---------------------------------------------------------------------------
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._predict(feed, 1)

    def predict(self, data: Dataset) -> dict[str, np.ndarray]:
        """All samples in one call to the runtime, each run alone (batch 1) inside it."""
        return self._predict(data.inputs, len(data))

    def time(self, feed: dict[str, np.ndarray], warmup: int, runs: int) -> Timing:
        """Latency measured inside JS (performance.now around execute + read-back)."""
        ans = self._call({"cmd": "time", "inputs": self._write_inputs(feed, 1),
                          "outputs": list(self.io.output_keys), "warmup": int(warmup), "runs": int(runs)})
        extra = {"backend": self.info.get("backend", self.backend), "tfjs": self.info.get("tfjs"),
                 "first_inference_ms": ans.get("firstMs"), "timer": "performance.now() inside JS",
                 **{k: v for k, v in self.info.items() if k not in ("backend", "tfjs")}}
        return Timing(self.runtime_name, "measured", self.where(), self.threads,
                      tuple(float(t) for t in ans["timesMs"]), self.load_ms, extra)

    # -- packing -------------------------------------------------------------------------------
    def _write_inputs(self, arrays: dict[str, np.ndarray], n: int) -> list[dict[str, Any]]:
        if not Path(self._tmp).is_dir():  # removed when the session was closed or stopped
            raise RuntimeLoadError(f"{self.runtime_name}: the session was closed or stopped; load the model again")
        self._calls += 1
        out = []
        for spec, key in zip(self.io.inputs, self.io.input_keys):
            if spec.name not in arrays:
                raise RuntimeLoadError(f"{self.runtime_name}: no input named {spec.name!r} "
                                       f"(model inputs: {', '.join(s.name for s in self.io.inputs)})")
            arr = np.asarray(arrays[spec.name])
            dtype = _TFJS_DTYPE.get(spec.dtype, "float32")
            if dtype == "int32" and arr.size and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
                raise RuntimeLoadError(f"{self.runtime_name}: input {spec.name!r} holds values beyond "
                                       "int32, which TF.js uses for integer tensors")
            arr = np.ascontiguousarray(arr.astype(_NP[dtype]))
            if arr.shape[0] != n:
                raise RuntimeLoadError(f"{self.runtime_name}: input {spec.name!r} has {arr.shape[0]} samples, expected {n}")
            path = Path(self._tmp) / f"in{self._calls}_{len(out)}.bin"
            arr.tofile(path)
            out.append({"key": key, "dtype": dtype, "shape": [1, *arr.shape[1:]], **self._input_ref(path)})
        return out

    def _predict(self, arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        ans = self._call({"cmd": "predict", "inputs": self._write_inputs(arrays, n), "n": int(n),
                          "outputs": list(self.io.output_keys), "out_dir": self._tmp})
        res = {}
        for name, out in zip(self.io.output_names, ans["outputs"]):
            flat = self._output_array(out)
            shape = [int(d) for d in out["shape"]] or [1]
            res[name] = flat.reshape((n * shape[0], *shape[1:]))
        return res


def timeout_option(options: dict[str, Any]) -> float:
    """The ``timeout_s`` load option (seconds per call to the JS side), default DEFAULT_TIMEOUT_S."""
    raw = options.get("timeout_s")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        t = float(raw)
    except (TypeError, ValueError):
        t = math.nan
    if not (t > 0 and math.isfinite(t)):
        raise ConfigError(f"timeout_s must be a positive number of seconds, not {raw!r}")
    return t


def output_dtype(name: str) -> Any:
    return {"float32": np.float32, "int32": np.int32, "bool": np.uint8}.get(name, np.float32)


class _NodeProcess:
    """The Node runner process and the threads that read its pipes."""

    def __init__(self, label: str):
        node = shutil.which("node")
        if node is None:
            raise MissingDependencyError("Node.js", hint="install Node >= 18, then run scripts/setup_js.sh")
        if not (RUNNER_DIR / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir():
            raise MissingDependencyError("the TF.js runner's npm packages",
                                         hint=f"run scripts/setup_js.sh (npm ci in {RUNNER_DIR})")
        self.label = label
        self.proc = subprocess.Popen([node, str(RUNNER_DIR / "node_runner.js")], cwd=str(RUNNER_DIR),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=40)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@edgeport "):  # TF.js prints its own notices on stdout too
                try:
                    self.answers.put(json.loads(line[len("@@edgeport "):]))
                except ValueError:
                    self.answers.put({"ok": False, "error": f"unreadable answer: {line[:200]}"})
        self.answers.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self.stderr.append(line.rstrip())

    def call(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the process is gone: the answer queue says how
        try:
            ans = self.answers.get(timeout=timeout_s)
        except queue.Empty:
            self.stop()
            raise RuntimeLoadError(f"{self.label}: no answer within {timeout_s:g} s (to {msg['cmd']!r}); "
                                   "the Node runner was killed") from None
        if ans is None:
            try:
                rc: int | str = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # stdout closed but still running: end it
                self.stop()
                rc = "killed"
            last = self.stderr[-1] if self.stderr else "no message"
            raise RuntimeLoadError(f"{self.label}: the Node runner exited (code {rc}) during "
                                   f"{msg['cmd']!r}: {last}")
        if not ans.get("ok"):
            raise RuntimeLoadError(f"{self.label}: {msg['cmd']} failed: {ans.get('error', 'no message')}")
        return ans

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: a runner stuck in a loop cannot ignore it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # only in D state; the OS reaps it when it returns
            pass


def _shutdown_node(proc: _NodeProcess, tmp: str) -> None:
    try:
        if proc.proc.poll() is None:
            proc.call({"cmd": "quit"}, 5.0)
            proc.proc.wait(timeout=5)
    except Exception:  # shutting down: a runner that will not quit is killed below
        pass
    proc.stop()
    shutil.rmtree(tmp, ignore_errors=True)


class TFJSNodeSession(TFJSSessionBase):
    def __init__(self, model: TFJSModel, runtime_name: str, backend: str, threads: int, timeout_s: float):
        super().__init__(model, threads, timeout_s)
        self.runtime_name, self.backend = runtime_name, backend
        self._proc = _NodeProcess(runtime_name)
        self._finalizer = weakref.finalize(self, _shutdown_node, self._proc, self._tmp)
        try:
            # the runner checks the shards again itself (relative, confined, sizes) before reading
            ans = self._call({"cmd": "load", "model": str(model.model_json.resolve()), "backend": backend,
                              "threads": threads, "maxModelJsonBytes": MAX_MODEL_JSON_BYTES})
        except BaseException:
            self._finalizer()  # no runner outlives a failed load
            raise
        self.threads = int(ans.get("threads", 1))
        self.load_ms = float(ans["loadMs"])
        self.info = {"backend": ans.get("backend"), "tfjs": ans.get("tfjs"), "node": ans.get("node"),
                     "simd": ans.get("simd"), "backend_init_ms": ans.get("backendMs"),
                     "start_ms": ans.get("startupMs")}

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        return self._proc.call(msg, self.timeout_s)

    def _input_ref(self, path: Path) -> dict[str, str]:
        return {"file": str(path)}

    def _output_array(self, out: dict[str, Any]) -> np.ndarray:
        return np.fromfile(out["file"], dtype=output_dtype(out["dtype"]))

    def where(self) -> str:
        simd = "SIMD, " if self.info.get("simd") else ""
        return (f"this host, TF.js {self.info.get('tfjs')} {self.backend} backend ({simd}{self.threads} "
                f"thread(s)) in Node {self.info.get('node')}")

    def close(self) -> None:
        self._finalizer()


class TFJSNodeRuntime(Runtime):
    """TF.js graph models in Node with the wasm backend (the backend a web page would use)."""

    name = "tfjs-node"
    formats = ("tfjs",)
    backend = "wasm"

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        """Start a Node runner for the model.json at ``path``; ``timeout_s`` bounds every call.
        The model.json and its shards are checked (:func:`open_model`) before Node starts."""
        model = open_model(Path(path), self.name)
        timeout = timeout_option(options)
        # Node's wasm backend runs single-threaded (its threaded build needs a page's workers)
        return TFJSNodeSession(model, self.name, self.backend, 1, timeout)


class TFJSNodeCPURuntime(TFJSNodeRuntime):
    """TF.js graph models in Node with the plain JavaScript cpu backend."""

    name = "tfjs-node-cpu"
    backend = "cpu"
