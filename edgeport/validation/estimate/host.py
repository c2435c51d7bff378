"""The host's own per-class efficiency, measured in ONNX Runtime, for the kernel classes the
published table does not pin down (fully connected on one row, activation × activation matmul,
element-wise, pooling, softmax-like ops).

Each class runs once as a one-node ONNX graph on one thread; its throughput (FLOP/s, or bytes/s
for the memory-bound classes) is divided by a 1×1 convolution's, the class the table fits best.
Ratios are rounded to quarter powers of two so that timing noise does not move the estimates
from one run to the next.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

#: ratios measured on the development host (x86-64, onnxruntime 1.31, one thread) — what the
#: estimator uses when it cannot measure (and what the tests use, for numbers that do not move)
DEFAULT_RATIOS = (("fully_connected", 0.2973), ("matmul", 1.0), ("elementwise", 0.5946), ("pool", 0.1768),
                  ("other", 0.1487))


@dataclass(frozen=True)
class HostTransfer:
    """Efficiency of each transferred class relative to a 1×1 convolution (bytes/s per FLOP/s
    for the memory-bound classes), and where the ratios were measured."""

    ratios: tuple[tuple[str, float], ...] = DEFAULT_RATIOS
    where: str = "defaults measured on the development host (x86-64, onnxruntime 1.31, 1 thread)"

    def ratio(self, kind: str) -> float:
        return dict(self.ratios)[kind]

    def to_dict(self) -> dict[str, object]:
        return {"ratios": dict(self.ratios), "where": self.where}


def _quantize(r: float) -> float:
    return 2.0 ** (round(math.log2(max(r, 1e-6)) * 4) / 4)


def _graph(kind: str):  # -> (onnx model, feeds, work)
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    f32 = np.float32
    inits, nodes, feeds, out = [], [], {}, None
    if kind == "pointwise":
        x = rng.standard_normal((1, 128, 28, 28)).astype(f32)
        inits.append(numpy_helper.from_array(rng.standard_normal((128, 128, 1, 1)).astype(f32), "w"))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["y"]))
        work, out = 2.0 * 128 * 128 * 28 * 28, [1, 128, 28, 28]
    elif kind == "fully_connected":
        x = rng.standard_normal((1, 1024)).astype(f32)
        inits.append(numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(f32), "w"))
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["y"]))
        work, out = 2.0 * 1024 * 1024, [1, 1024]
    elif kind == "matmul":
        x = rng.standard_normal((12, 128, 64)).astype(f32)
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]))
        nodes.append(helper.make_node("MatMul", ["x", "xt"], ["y"]))
        work, out = 2.0 * 12 * 128 * 128 * 64, [12, 128, 128]
    elif kind == "elementwise":
        x = rng.standard_normal((1, 64, 56, 56)).astype(f32)
        nodes.append(helper.make_node("Add", ["x", "x"], ["y"]))
        work = 3.0 * x.nbytes
    elif kind == "pool":
        x = rng.standard_normal((1, 256, 28, 28)).astype(f32)
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["y"]))
        work, out = float(x.nbytes), [1, 256, 1, 1]
    else:  # other: softmax
        x = rng.standard_normal((12, 128, 128)).astype(f32)
        nodes.append(helper.make_node("Softmax", ["x"], ["y"], axis=-1))
        work = 2.0 * x.nbytes
    feeds["x"] = x
    out = list(x.shape) if out is None else out
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds, work


def _rate(kind: str, runs: int = 20) -> float:
    import numpy as np
    import onnxruntime as ort

    model, feeds, work = _graph(kind)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return work / float(np.median(times))


@lru_cache(maxsize=1)
def measure_host() -> HostTransfer:
    """The ratios measured here (once per process, about half a second); the defaults, saying
    why, when onnxruntime cannot run."""
    try:
        import onnxruntime as ort

        base = _rate("pointwise")
        ratios = tuple((kind, _quantize(_rate(kind) / base)) for kind, _ in DEFAULT_RATIOS)
        return HostTransfer(ratios, f"measured on this host in onnxruntime {ort.__version__}, 1 thread "
                                    f"(1×1 convolution: {base / 1e9:.1f} GFLOP/s)")
    except Exception as exc:  # noqa: BLE001 - the estimate still stands on the defaults, and says so
        return HostTransfer(where=f"defaults (host measurement failed: {type(exc).__name__}: {exc})"[:300])
