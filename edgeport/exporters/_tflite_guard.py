"""The int8 accuracy guard of the TFLite exporter: judge a full-integer model against the float
one on calibration data, in every LiteRT runtime the plan validates in, and keep float the layers
that drift (a float prefix, the ops whose kernels disagree, or the most sensitive layers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import Dataset
from ._tflite_convert import IOSpec, _representative, convert


# --- int8 accuracy guard: keep the first layers float when full-integer int8 drifts -------------
#
# Why the first layers: a network's high-resolution head (stem conv, first depthwise/projection
# convs) has few input channels and batch-norm-folded weights with wide per-channel ranges, so its
# int8 rounding error is the largest of the network (measured on EfficientNet-Lite0: 2.5-3
# quantization steps rms on the stem and first depthwise, ~0.3 elsewhere) and every later layer
# carries it on. Keeping that head float and the rest int8 is the usual mixed-precision remedy and
# costs float arithmetic only where the feature maps have few channels.

_WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                           "CONV_3D", "BATCH_MATMUL", "EMBEDDING_LOOKUP"})


@dataclass
class GuardResult:
    """The int8 flatbuffer chosen by :func:`guard_int8` and how it was chosen."""

    flat: bytes
    float_layers: list[str]        # "OP output_tensor" of each layer kept float (empty: full integer)
    trials: list[dict[str, Any]]   # per candidate: float layers kept, the parity figures vs float
    met: bool                      # whether the chosen candidate meets the parity criteria
    chosen: int = 0                # index in ``trials`` of the candidate shipped
    why: str = "full-integer int8 meets every criterion"


@dataclass(frozen=True)
class GuardInputs:
    """What the guard re-quantizes from and judges with."""

    sm_dir: Path
    specs: Sequence[IOSpec]
    calibration: Dataset
    calibration_samples: int
    int8_io: str
    tolerance: Any
    classifier: str | None
    workdir: Path
    #: the LiteRT kernels the artifact is validated in (False: XNNPACK, True: reference kernels);
    #: a trial passes only when it passes in each
    kernels: tuple[bool, ...] = (False,)


#: calibration samples the per-layer int8 error is measured on
SENSITIVITY_SAMPLES = 16
#: how many of the most sensitive layers are kept float, in turn, when no float prefix is enough
SENSITIVE_STEPS = (1, 2, 4, 8)


def guard_int8(g: GuardInputs, flat: bytes, fp32_flat: bytes | None = None) -> GuardResult:
    """Check a full-integer model against the float one on calibration data; fix it if it drifts.

    Both .tflite files run in the validation's LiteRT session on up to ``GUARD_SAMPLES``
    calibration samples (never evaluation data) and every output is judged with the parity
    check's criteria (:mod:`edgeport.exporters.int8_guard`). When short, the model is
    re-quantized from one calibration pass with the first 2, 4, 8... weighted layers kept float
    (TF's QuantizationDebugger denylist); the search policy is ``search_float_prefix``'s. When no
    prefix is enough, the 1, 2, 4, 8 layers with the largest int8 error of their own are kept
    float instead. Each candidate is judged in every LiteRT runtime the plan validates in; the
    one shipped is the cheapest meeting the criteria, else the best measured (``int8_guard.pick``).
    """
    from .int8_guard import guard_indices, pick, score, search_float_prefix

    idx = guard_indices(len(g.calibration))
    feeds = [{s.name: np.asarray(g.calibration.inputs[s.name][i:i + 1]).astype(s.dtype) for s in g.specs} for i in idx]
    if fp32_flat is None:
        fp32_flat = convert(g.sm_dir, "fp32", g.specs, None, 0, "float")
    reference = _run_tflite(fp32_flat, feeds, g.workdir)

    def judge(candidate: bytes, k: int) -> dict[str, Any]:
        trials = []
        for ref_kernels in g.kernels:
            trial = score(_run_tflite(candidate, feeds, g.workdir, ref_kernels), reference, g.tolerance,
                          g.classifier, k)
            trials.append({**trial, "runtime": "litert-reference" if ref_kernels else "litert"})
        # the worst runtime speaks for the candidate: a miss anywhere, else the lowest cosine
        return min(trials, key=lambda t: (t["ok"], t["cosine"]))

    first = judge(flat, 0)
    if first["ok"]:
        return GuardResult(flat, [], [first], True)

    import warnings

    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(g.sm_dir))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(g.calibration, g.specs, g.calibration_samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    # every candidate measured, in trial order: (flatbuffer, the layers it keeps float)
    built: list[tuple[bytes, list[tuple[str, str]]]] = [(flat, [])]
    order = _interpreter_input_order(flat, [s.name for s in g.specs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the debugger runs TF's deprecated tf.lite.Interpreter
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=lambda: ([f[n] for n in order] for f in feeds[:SENSITIVITY_SAMPLES]))
        layers, sensitivity = _layers_in_order(debugger)
        weighted = [i for i, (op, _) in enumerate(layers) if op in _WEIGHTED_OPS]

        def requantize(kept: list[tuple[str, str]]) -> bytes:
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=[name for _, name in kept], fully_quantize=g.int8_io == "int8")
            return debugger.get_nondebug_quantized_model()

        def build(k: int) -> dict[str, Any]:
            kept = layers[:weighted[k - 1] + 1]
            built.append((requantize(kept), kept))
            return judge(built[-1][0], k)

        result = search_float_prefix(first, len(weighted), build)
        # trials[i] was made from built[i]: the prefix search's trials first, in order
        trials = list(result.trials)
        met = result.met

        def measure(kept: list[tuple[str, str]], why: str) -> dict[str, Any]:
            candidate = requantize(kept)
            built.append((candidate, kept))
            trials.append({**judge(candidate, len(kept)), "kept_float": why})
            return trials[-1]

        if not met and len(g.kernels) > 1:
            # the runtimes disagree on the very same int8 file: keep float the ops whose int8
            # results differ between XNNPACK and the reference kernels
            split = _kernel_disagreements(flat, feeds[:SENSITIVITY_SAMPLES], g.workdir)
            kept = [layer for layer in layers if layer[1] in split]
            if kept:
                met = bool(measure(kept, "where the runtimes' int8 kernels disagree")["ok"])
        if not met:
            # the error may sit late (a small regression head): keep float the layers whose own
            # int8 error is largest instead, as measured layer by layer on calibration inputs
            ranked = sorted(range(len(layers)), key=lambda i: -sensitivity[i])
            for n in SENSITIVE_STEPS:
                if n > max(len(layers) // 2, 1):
                    break
                if measure([layers[i] for i in sorted(ranked[:n])], "most sensitive")["ok"]:
                    break
    # the best measured candidate ships: the cheapest (fewest ops kept float) meeting the
    # criteria, else the best measured one — never the candidate before a step that paid too little
    assert len(built) == len(trials)
    chosen, why = pick(trials, cost=lambda i: len(built[i][1]))
    flat_c, kept_layers = built[chosen]
    return GuardResult(flat_c, [f"{op} {name}" for op, name in kept_layers], trials, bool(trials[chosen]["ok"]),
                       chosen, why)


def _interpreter_input_order(flat: bytes, names: list[str]) -> list[str]:
    """Source input names in the order the interpreter lists its input tensors — the order the
    quantization debugger feeds a list in (tensor names look like ``serving_default_<name>:0``)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=flat).get_input_details()
    order = []
    for d in details:
        tensor = d["name"].split(":")[0]
        match = [n for n in names if tensor.endswith(n) and n not in order]
        order.append(max(match, key=len) if match else next(n for n in names if n not in order))
    return order if sorted(order) == sorted(names) else names


def _layers_in_order(debugger: Any) -> tuple[list[tuple[str, str]], list[float]]:
    """(op type, output tensor name) of every quantized layer, in execution order, and each one's
    own int8 error: RMS difference from the float op on the same inputs, in quantization steps
    (plain rounding gives about 0.29; a layer far above that is losing information)."""
    import csv
    import io

    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))

    def steps(row: dict[str, str]) -> float:
        try:
            mse, scale = float(row.get("mean_squared_error", "nan")), float(row.get("scale", "nan"))
        except ValueError:
            return 0.0
        value = float(np.sqrt(mse) / scale) if scale > 0 else 0.0
        return value if np.isfinite(value) else 0.0

    return [(row["op_name"], row["tensor_name"]) for row in rows], [steps(row) for row in rows]


#: quantization steps by which two kernel sets may differ on one int8 tensor (rounding order)
KERNEL_DISAGREEMENT_STEPS = 4


def _kernel_disagreements(flat: bytes, feeds: list[dict[str, np.ndarray]], workdir: Path) -> set[str]:
    """Names of the int8 tensors that XNNPACK and TFLite's reference kernels compute differently
    (by more than :data:`KERNEL_DISAGREEMENT_STEPS` steps) from inputs they agree on, on
    ``feeds``: the ops whose int8 result a device's kernels may not reproduce."""
    import tempfile

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def tensors(resolver: Any, path: str) -> tuple[list[dict[int, np.ndarray]], Any]:
        it = Interpreter(model_path=path, experimental_op_resolver_type=resolver,
                         experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        by_name = {d["name"]: d["index"] for d in it.get_input_details()}
        runs = []
        for feed in feeds:
            for name, value in feed.items():
                index = next((i for n, i in by_name.items() if n == name or n.endswith(f"_{name}:0")
                              or n.endswith(name)), None)
                if index is None:
                    return [], it
                it.set_tensor(index, value)
            it.invoke()
            runs.append({d["index"]: it.get_tensor(d["index"]).copy() for d in it.get_tensor_details()
                         if d["dtype"] == np.int8 and d["shape"].size})
        return runs, it

    with tempfile.NamedTemporaryFile(suffix=".tflite", dir=workdir) as f:
        f.write(flat)
        f.flush()
        fast, _ = tensors(OpResolverType.AUTO, f.name)
        ref, it = tensors(OpResolverType.BUILTIN_REF, f.name)
    if not fast or not ref:
        return set()
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}

    def gap(index: int) -> int:
        if index not in fast[0] or index not in ref[0]:
            return 0
        return max(int(np.abs(a[index].astype(np.int32) - b[index].astype(np.int32)).max()) for a, b in zip(fast, ref))

    split = set()
    for op in it._get_ops_details():  # noqa: SLF001 - the public API lists no op graph
        # an op whose inputs agree and whose output does not: the kernels themselves differ
        # (ops downstream of it differ only because their inputs do)
        if all(gap(i) <= KERNEL_DISAGREEMENT_STEPS for i in op["inputs"] if i >= 0):
            split |= {names[o] for o in op["outputs"] if gap(o) > KERNEL_DISAGREEMENT_STEPS}
    return split


def _run_tflite(flat: bytes, feeds: list[dict[str, np.ndarray]], workdir: Path,
                reference: bool = False) -> dict[str, np.ndarray]:
    """Every output of ``flat`` on ``feeds`` (dequantized), run in the validation's LiteRT session
    (``reference``: TFLite's reference kernels instead of XNNPACK)."""
    import tempfile

    from ..validation.runtimes.litert import LiteRTSession

    with tempfile.NamedTemporaryFile(suffix=".tflite", dir=workdir) as f:
        f.write(flat)
        f.flush()
        session = LiteRTSession(Path(f.name), threads=2, reference=reference)
        outs: dict[str, list[np.ndarray]] = {}
        for feed in feeds:
            for name, y in session.run(feed).items():
                outs.setdefault(name, []).append(np.asarray(y, dtype=np.float64))
    return {n: np.concatenate(v) for n, v in outs.items()}
