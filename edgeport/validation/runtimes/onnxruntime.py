"""onnxruntime (CPU provider) as a runtime: runs any .onnx file."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, RuntimeLoadError, one_line
from ...data import TensorSpec
from .base import Runtime, Session

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


class OnnxRuntimeSession(Session):
    runtime_name = "onnxruntime"

    def __init__(self, path: Path, threads: int):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        t0 = time.perf_counter()
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeLoadError(f"onnxruntime cannot load {Path(path).name}: {one_line(exc)}") from exc
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self.threads = threads
        self.version = ort.__version__
        self.input_specs = tuple(
            TensorSpec(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape),
                       _ORT_TYPES.get(i.type, "float32")) for i in self._sess.get_inputs())
        self.output_names = tuple(o.name for o in self._sess.get_outputs())

    def where(self) -> str:
        return f"this host, onnxruntime {self.version} CPU provider, {self.threads} thread(s)"

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {s.name: np.asarray(feed[s.name]).astype(s.dtype, copy=False) for s in self.input_specs}
        try:
            res = self._sess.run(None, cast)
        except Exception as exc:
            raise RuntimeLoadError(f"onnxruntime failed to run the model: {one_line(exc)}") from exc
        return dict(zip(self.output_names, res))


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    formats = ("onnx",)

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        p = Path(path)
        if not p.is_file():
            raise RuntimeLoadError(f"no such model file: {p}")
        return OnnxRuntimeSession(p, threads)
