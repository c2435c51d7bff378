"""LiteRT (TFLite) runtimes: the ai_edge_litert Interpreter with XNNPACK, and with reference kernels.

Works on any ``.tflite``: names, shapes, dtypes and quantization parameters come from the file
(its SignatureDef when it has one, its tensors otherwise). Callers feed what the source model
takes: float arrays are quantized for int8/uint8 inputs, int64 ids are cast to int32 where the
model wants int32, and quantized outputs come back dequantized to float32.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, RuntimeLoadError, one_line
from ...native_logs import native_stderr
from ...data import TensorSpec
from .base import Runtime, Session


def _interpreter_module() -> Any:
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:  # the 2023 package; imports only under numpy 1.x, accepted where it happens to work
            from tflite_runtime import interpreter  # type: ignore[no-redef]
        except ImportError as exc:
            raise MissingDependencyError("ai-edge-litert", extra="tflite") from exc
    return interpreter


def _litert_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:
        return "?"


class LiteRTSession(Session):
    """A loaded ``.tflite``; ``run`` takes and returns arrays keyed by the signature's names."""

    provenance = "measured"

    def __init__(self, path: Path, threads: int, reference: bool):
        mod = _interpreter_module()
        self.path = Path(path)
        self.threads = int(threads)
        self.reference = reference
        self.runtime_name = "litert-reference" if reference else "litert"
        if not self.path.is_file():
            raise RuntimeLoadError(f"no such .tflite file: {self.path}")
        resolver = mod.OpResolverType.BUILTIN_REF if reference else mod.OpResolverType.AUTO
        t0 = time.perf_counter()
        try:
            with native_stderr():  # the delegate's "INFO: Created ... delegate" line
                self._interp = mod.Interpreter(model_path=str(self.path), num_threads=self.threads,
                                               experimental_op_resolver_type=resolver)
            signatures = self._interp.get_signature_list()
            if signatures:
                # the serving signature when there is one; its names are the model's public names
                key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
                self._runner = self._interp.get_signature_runner(key)
                self._in = dict(self._runner.get_input_details())
                self._out = dict(self._runner.get_output_details())
                self.signature = key
            else:
                self._interp.allocate_tensors()
                self._runner = None
                self._in = {d["name"]: d for d in self._interp.get_input_details()}
                self._out = {d["name"]: d for d in self._interp.get_output_details()}
                self.signature = None
        except RuntimeLoadError:
            raise
        except Exception as exc:
            raise RuntimeLoadError(f"LiteRT cannot load {self.path.name}: {one_line(exc)}") from exc
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self.input_specs = tuple(TensorSpec(n, tuple(int(s) for s in d["shape"]), _feed_dtype(d))
                                 for n, d in self._in.items())
        self.output_names = tuple(self._out)

    # -- running ----------------------------------------------------------------------------------
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {}
        for name, det in self._in.items():
            if name in feed:
                x = feed[name]
            elif len(self._in) == 1 and len(feed) == 1:
                x = next(iter(feed.values()))  # `--data` with a single array named `x`
            else:
                raise RuntimeLoadError(f"missing input {name!r} (given: {', '.join(feed) or 'nothing'})")
            args[name] = _to_model(np.asarray(x), det)
        try:
            if not getattr(self, "_warm", False):
                # the delegate is built on the first invocation and announces itself on fd 2
                with native_stderr():
                    outs = self._invoke(args)
                self._warm = True
            else:
                outs = self._invoke(args)
        except Exception as exc:
            raise RuntimeLoadError(f"LiteRT failed to run {self.path.name}: {one_line(exc)}") from exc
        return {n: _from_model(outs[n], self._out[n]) for n in self.output_names}

    def _invoke(self, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._runner(**args) if self._runner is not None else self._run_tensors(args)

    def _run_tensors(self, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        resized = False
        for name, x in args.items():
            det = self._in[name]
            if tuple(x.shape) != tuple(det["shape"]):
                self._interp.resize_tensor_input(det["index"], list(x.shape))
                resized = True
        if resized:
            self._interp.allocate_tensors()
        for name, x in args.items():
            self._interp.set_tensor(self._in[name]["index"], x)
        self._interp.invoke()
        return {n: self._interp.get_tensor(d["index"]).copy() for n, d in self._out.items()}

    def io_dtypes(self) -> dict[str, str]:
        """The artifact's own input and output dtypes by name (int8 for quantized I/O)."""
        return {n: np.dtype(d["dtype"]).name for n, d in {**self._in, **self._out}.items()}

    def where(self) -> str:
        kernels = ("TFLite reference kernels (BUILTIN_REF op resolver), no XNNPACK" if self.reference
                   else "XNNPACK delegate (default op resolver)")
        return f"this host, LiteRT {_litert_version()} interpreter, {kernels}, {self.threads} thread(s)"


def _feed_dtype(det: dict[str, Any]) -> str:
    """The dtype a caller should feed: float for quantized inputs (quantized here), else the model's."""
    dtype = np.dtype(det["dtype"])
    scale = det.get("quantization", (0.0, 0))[0]
    if dtype.kind in "iu" and dtype.itemsize == 1 and scale:
        return "float32"
    return dtype.name


def _to_model(x: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    want = np.dtype(det["dtype"])
    if x.dtype == want:
        return x
    scale, zero = det.get("quantization", (0.0, 0))
    if want.kind in "iu" and x.dtype.kind == "f" and scale:
        info = np.iinfo(want)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(want)
    if want.kind in "iu" and x.dtype.kind in "iu":
        info = np.iinfo(want)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise RuntimeLoadError(f"input {det['name']!r} has values outside {want.name}")
    return x.astype(want)


def _from_model(y: np.ndarray, det: dict[str, Any]) -> np.ndarray:
    scale, zero = det.get("quantization", (0.0, 0))
    if y.dtype.kind in "iu" and y.dtype.itemsize == 1 and scale:
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y


class LiteRTRuntime(Runtime):
    """``litert``: the default op resolver (XNNPACK delegate) with the plan's thread count."""

    name = "litert"
    formats = ("tflite",)
    reference = False

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        return LiteRTSession(Path(path), threads=threads, reference=self.reference)


class LiteRTReferenceRuntime(LiteRTRuntime):
    """``litert-reference``: TFLite's reference kernels, a second, independent measurement."""

    name = "litert-reference"
    reference = True
