"""coreml-emulator: runs a CoreML ML Program (.mlpackage) on Linux with numpy.

CoreML itself only predicts on Apple platforms. This runtime reads the saved program (spec +
weight.bin) and interprets its ops, emulating fp16 storage for FLOAT16 programs. What it proves:
the saved program (its ops, weights, compression, precision) computes what the source model
computes, to the stated error. What it cannot: bit-exactness with the GPU / Neural Engine, and
device latency — its timings are of numpy on this host.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ....data import Dataset, TensorSpec
from ....errors import RuntimeLoadError
from ..base import Runtime, Session

PROVES = ("the saved ML Program (ops, weights, weight compression, fp16 storage) reproduces the "
          "source model's outputs to the reported error")
CANNOT_PROVE = ("bit-exact agreement with the iPhone GPU / Neural Engine (op-internal arithmetic "
                "differs), and device latency (timings are numpy on this host)")


class CoreMLEmulatorSession(Session):
    """A loaded ML Program. ``predict`` runs many samples as one batch when that is proven to give
    the per-sample results (checked on a few samples each call; otherwise it runs per sample)."""

    runtime_name = "coreml-emulator"
    provenance = "emulated"

    def __init__(self, path: Path, threads: int = 1):
        from .interpreter import Interpreter
        from .program import load_program

        t0 = time.perf_counter()
        self.path = Path(path)
        self.program = load_program(self.path)
        self.interpreter = Interpreter(self.program)
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self.threads = threads
        self.input_specs = tuple(TensorSpec(f.name, tuple(f.shape), f.dtype) for f in self.program.feature_inputs)
        self.output_names = tuple(f.name for f in self.program.feature_outputs)
        self._out_dtypes = {f.name: f.dtype for f in self.program.feature_outputs}
        self.batching: dict[str, Any] = {"mode": "not used yet"}
        self._limiter = _thread_limiter(threads)

    # -- running ----------------------------------------------------------------------------------
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self._cast_feeds(feed)
        lead = {np.shape(v)[0] for v in feeds.values() if np.ndim(v)}
        declared = {f.name: f.shape for f in self.program.feature_inputs}
        batch = None
        if len(lead) == 1:
            n = lead.pop()
            if n > 1 and all(declared[k][:1] == (1,) for k in feeds):  # batch-1 program, many samples
                batch = n
        return self._run(feeds, batch)

    def _run(self, feeds: dict[str, np.ndarray], batch: int | None) -> dict[str, np.ndarray]:
        with self._limiter():
            raw = self.interpreter.run(feeds, batch=batch)
        outs = {}
        for name, prog_name in zip(self.output_names, self.program.outputs):
            outs[name] = np.asarray(raw[prog_name]).astype(self._out_dtypes.get(name, "float32"))
        return outs

    def _cast_feeds(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds cast to the declared input types (e.g. int64 token ids -> int32, as an app does)."""
        out = {}
        for spec in self.input_specs:
            if spec.name not in feed:
                raise RuntimeLoadError(f"missing input {spec.name!r}; the model takes "
                                       f"{', '.join(s.name for s in self.input_specs)}")
            arr = np.asarray(feed[spec.name])
            want = np.dtype(spec.dtype)
            if arr.dtype.kind in "iu" and want.kind in "iu":
                info = np.iinfo(want)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise RuntimeLoadError(f"input {spec.name!r} holds values outside {want.name}")
            if len(spec.shape) != arr.ndim or any(d > 0 and d != s for d, s in zip(spec.shape[1:], arr.shape[1:])):
                raise RuntimeLoadError(f"input {spec.name!r} has shape {arr.shape}, the model "
                                       f"declares {spec.shape}")
            out[spec.name] = arr.astype(want)
        return out

    def predict(self, data: Dataset) -> dict[str, np.ndarray]:
        n = len(data)
        leads = {f.shape[:1] for f in self.program.feature_inputs}
        # batch-1 programs are run batched by reading their leading 1 as the batch; programs
        # with a flexible leading dimension take a batch as they are
        native = leads == {(-1,)}
        if n <= 1 or not (native or leads == {(1,)}):
            self.batching = {"mode": "per-sample"}
            return super().predict(data)
        chunk = max(1, min(n, (1 << 24) // max(1, self.interpreter.peak_elements)))
        try:
            parts: dict[str, list[np.ndarray]] = {k: [] for k in self.output_names}
            for start in range(0, n, chunk):
                sub = {k: v[start:start + chunk] for k, v in data.inputs.items()}
                size = len(next(iter(sub.values())))
                res = self._run(self._cast_feeds(sub), batch=None if native else size)
                for k in self.output_names:
                    parts[k].append(res[k])
            outs = {k: np.concatenate(v) for k, v in parts.items()}
        except RuntimeLoadError as exc:
            self.batching = {"mode": "per-sample", "why": f"batched run failed: {exc}"}
            return super().predict(data)
        # a batched run must give exactly what per-sample runs give: check it on every call
        checked = sorted({0, n // 2, n - 1})
        for i in checked:
            single = self.run(data.sample(i))
            for k in self.output_names:
                a, b = outs[k][i:i + 1], single[k]
                if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
                    diff = (float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                            if a.shape == b.shape else float("inf"))
                    self.batching = {"mode": "per-sample", "why": f"batched output {k!r} of sample {i} "
                                     f"differs from its per-sample run (max abs {diff:.2e})"}
                    return super().predict(data)
        self.batching = {"mode": "batched (flexible batch dim)" if native else "batched", "chunk": chunk,
                         "checked_samples": checked, "equal_to_per_sample_runs": True}
        return outs

    def where(self) -> str:
        return (f"numpy emulation of the ML Program on this host, not an iPhone figure "
                f"({self.threads} thread(s))")

    def facts(self) -> dict[str, Any]:
        """What this emulated run proves and what it cannot, for the report."""
        return {"runtime": "coreml-emulator (numpy interpreter of the ML Program)",
                "program_precision": "fp16 storage emulated" if self._is_fp16() else "fp32",
                "decompressed_at_load": dict(self.interpreter.decompressed),
                "proves": PROVES, "cannot_prove": CANNOT_PROVE, "batching": self.batching}

    def _is_fp16(self) -> bool:
        return any(t is not None and t.dtype == "FLOAT16" for op in self.interpreter.steps for _, t in op.outputs)


def _thread_limiter(threads: int) -> Any:
    """Context-manager factory limiting the BLAS threads numpy uses (no-op without threadpoolctl)."""
    from contextlib import nullcontext

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return nullcontext
    controller = ThreadpoolController()
    return lambda: controller.limit(limits=threads, user_api="blas")


def supported_ops() -> list[str]:
    """Every MIL op type the emulator executes, sorted (``const`` included), for
    ``edgeport targets --ops ios-coreml``. Importing the interpreter registers every ops_* module."""
    from . import interpreter  # noqa: F401
    from .registry import OPS

    return sorted(set(OPS) | {"const"})


class CoreMLEmulatorRuntime(Runtime):
    """Loads .mlpackage ML Programs into :class:`CoreMLEmulatorSession`."""

    name = "coreml-emulator"
    formats = ("coreml",)

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        return CoreMLEmulatorSession(Path(path), threads=threads)


__all__ = ["CoreMLEmulatorRuntime", "CoreMLEmulatorSession", "supported_ops"]
