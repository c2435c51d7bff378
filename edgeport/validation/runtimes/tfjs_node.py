"""Real TF.js in Node: ``tfjs-node`` (wasm backend, the one pages use) and ``tfjs-node-cpu``
(the pure-JavaScript cpu backend).

One Node process per loaded model runs ``tfjs_js/node_runner.js`` (shipped in the package, npm
packages from its committed lockfile). Python talks to it with JSON lines; tensors go through
files. Every sample of a prediction is run in that process, one at a time, and latency is timed
inside it with ``performance.now``. Every call is bounded by ``timeout_s``: a hung or crashed
runner is stopped and reported as a :class:`RuntimeLoadError`, never waited on forever.

The input/output packing here is shared with the Chromium runtime; model.json is read by
:mod:`.tfjs_model`.
"""
from __future__ import annotations

import json
import math
import queue
import shutil
import subprocess
import tempfile
import threading
import weakref
from abc import abstractmethod
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset
from ...errors import ConfigError, MissingDependencyError, RuntimeLoadError
from .base import Runtime, Session, Timing
from .tfjs_graph_io import read_graph_io
from .tfjs_model import MAX_MODEL_JSON_BYTES, TFJSModel, open_model

RUNNER_DIR = Path(__file__).parent / "tfjs_js"
DEFAULT_TIMEOUT_S = 600.0
#: test hook: the JS side stops answering at this command (a busy loop); honoured only when set
TEST_HANG_ENV = "EDGEPORT_TFJS_TEST_HANG"
_TFJS_DTYPE = {"float32": "float32", "int32": "int32", "int64": "int32", "bool": "bool"}
_NP = {"float32": np.float32, "int32": np.int32, "bool": np.uint8}


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
