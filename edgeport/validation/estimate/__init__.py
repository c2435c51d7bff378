"""Device-style latency estimates: what an artifact would take on a named phone or board, how
the figure was made (its grade and basis) and how wrong that method has been.

Grades:

- **A** — published: this network was timed on this device in this runtime, precision and thread
  count (``targets/latencies.toml``); the figure is the published one (several publications:
  their median, the interval their range).
- **B** — anchored: the device has published CPU figures for other networks in the same
  runtime, precision and threads; the artifact's kernels are timed by the roofline fitted to
  them (:mod:`.fit`). Interval: the leave-one-model-out errors.
- **C** — from specs: no published figure on the device; its peak (cores × GHz × FLOP/cycle, the
  fastest cores the threads run on) times the efficiency fitted on the devices that have figures.
  Interval: the leave-one-device-out errors.
- **D** — not estimable: an accelerator (GPU, NPU, DSP, Edge TPU, Neural Engine) without a
  published figure for this network, a spec that is not published, a precision no published row
  covers, or a browser (measured in Chromium, never estimated). No number is given.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...targets.devices import DeviceSpec, core_specs, load_device
from ...targets.published import PublishedTable, Row, published_table
from .fit import FIT_RUNTIME, Fitted, fitted, predict, spec_scale
from .graph import NotEstimable, artifact_kernels
from .host import HostTransfer, measure_host
from .kernels import Kernel, same_network, summary, total_flops
from .reference_models import BUILDERS, reference_kernels

__all__ = ["Estimate", "NotEstimable", "estimate", "estimate_kernels", "identify"]

#: the CPU runtime a device runs each artifact format in
CPU_RUNTIME = {"tflite": "litert-cpu", "onnx": "onnxruntime-cpu", "coreml": "coreml-cpu"}
#: accelerator delegates that run each format
DELEGATES = {"tflite": ("litert-gpu", "litert-nnapi", "edgetpu", "qnn-npu"), "coreml": ("coreml-gpu", "coreml-ane"),
             "onnx": ()}
#: the precision the CPU kernels compute in, for each exported precision
CPU_COMPUTE = {"fp32": "fp32", "fp16": "fp32", "int8": "int8"}
FLOAT = ("fp32", "fp16")


@dataclass(frozen=True)
class Estimate:
    """One device × runtime estimate (``latency.estimates[]`` in report.json)."""

    device: str
    runtime: str
    precision: str
    threads: int | None
    p50_ms: float | None
    low_ms: float | None
    high_ms: float | None
    grade: str
    basis: str
    sources: tuple[str, ...] = ()
    model: str | None = None
    #: how wrong the method behind this grade has been on held-out published rows
    method_error: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "runtime": self.runtime, "precision": self.precision, "threads": self.threads,
                "p50_ms": self.p50_ms, "low_ms": self.low_ms, "high_ms": self.high_ms, "grade": self.grade,
                "basis": self.basis, "sources": list(self.sources), "model": self.model,
                "method_error": dict(self.method_error)}


def _ms(x: float | None) -> float | None:
    if x is None:
        return None
    return round(x, 3) if x < 100 else round(x, 1)


@lru_cache(maxsize=1)
def _reference_summaries() -> dict[str, dict[str, float]]:
    return {m: summary(reference_kernels(m)) for m in BUILDERS}


def identify(kernels: Sequence[Kernel]) -> str | None:
    """The published network these kernels are (same FLOPs per class within 3 %), if any."""
    mine = summary(kernels)
    for model, ref in _reference_summaries().items():
        if same_network(mine, ref):
            return model
    return None


def _published(table: PublishedTable, model: str | None, device: DeviceSpec, runtime: str,
               precisions: Sequence[str], threads: int | None) -> list[Row]:
    if model is None:
        return []
    names = (device.name, *device.published_as)
    return [r for r in table.rows if r.model == model and r.device in names and r.runtime == runtime
            and r.precision in precisions and r.threads == threads]


def _grade_a(table: PublishedTable, rows: list[Row], device: DeviceSpec, runtime: str, precision: str,
             threads: int | None) -> Estimate:
    values = sorted(r.ms for r in rows)
    mid = values[len(values) // 2] if len(values) % 2 else math.sqrt(values[len(values) // 2 - 1] * values[len(values) // 2])
    elsewhere = sorted({r.device for r in rows if r.device != device.name})
    basis = "published: " + "; ".join(table.describe(r) for r in rows)
    if elsewhere:
        basis += f" (measured on {', '.join(elsewhere)}: the same SoC)"
    basis += ("; one measurement, its source states no spread" if len(rows) == 1 else
              f"; {len(rows)} publications, the interval is their range")
    return Estimate(device.name, runtime, precision, threads, _ms(mid), _ms(values[0]), _ms(values[-1]), "A", basis,
                    tuple(sorted({table.sources[r.source].cite() for r in rows})), rows[0].model)


def _not_estimable(device: DeviceSpec, runtime: str, precision: str, threads: int | None, why: str,
                   model: str | None = None, sources: Sequence[str] = ()) -> Estimate:
    return Estimate(device.name, runtime, precision, threads, None, None, None, "D", why, tuple(sources), model)


def _cpu(kernels: Sequence[Kernel], model: str | None, device: DeviceSpec, fmt: str, precision: str,
         fit: Fitted, table: PublishedTable) -> Estimate:
    runtime = CPU_RUNTIME[fmt]
    threads = device.threads
    compute = CPU_COMPUTE.get(precision)
    if compute is None:
        return _not_estimable(device, runtime, precision, threads,
                              f"no published CPU figure for {precision} models on any device: the method's error "
                              "for them is unmeasured, so no estimate", model)
    rows = _published(table, model, device, runtime, (compute,), threads)
    if rows:
        return _grade_a(table, rows, device, runtime, precision, threads)
    params = fit.params
    group = (device.name, FIT_RUNTIME, compute, threads)
    gflop = total_flops(kernels) / 1e9
    counted = f"kernels counted from the artifact ({gflop:.3g} GFLOP in {len(kernels)} kernels)"
    if precision == "fp16":
        counted += "; fp16 weights are expanded at load and computed in fp32 by the CPU kernels (XNNPACK's default)"
    if group in params.scale:
        grade, scale = "B", params.scale[group]
        anchors = [r for r in fit.rows if r.key == group]
        basis = (f"roofline fitted to the {len(anchors)} published {FIT_RUNTIME} {compute} rows of this device "
                 f"({', '.join(sorted({table.models[r.model].display for r in anchors}))}) and the class "
                 f"efficiencies of all {len(fit.rows)} CPU rows; {counted}")
        sources = sorted({table.sources[r.source].cite() for r in anchors})
    else:
        scale = spec_scale(params, device, compute, threads)
        if scale is None:
            missing = [c.core for c, spec in device.thread_cores(threads)
                       if c.ghz is None or spec.per_cycle(compute) is None]
            return _not_estimable(device, runtime, precision, threads,
                                  f"no published figure and no spec-based peak: the {compute} throughput or clock "
                                  f"of {', '.join(sorted(set(missing)))} is not published", model,
                                  device.sources)
        grade = "C"
        peak = device.peak(compute, threads) or 0.0
        unit = "GOP/s" if compute == "int8" else "GFLOP/s"
        basis = (f"roofline from specs: peak {peak:.1f} {unit} of the {threads} fastest cores × efficiency "
                 f"{params.eta[compute]:.2f} (the geometric mean fitted on "
                 f"{', '.join(sorted({g[0] for g in params.eta_groups[compute]}))}); {counted}")
        unverified = device.unverified(threads)
        if unverified:
            basis += f"; rests on assumed core throughput: {', '.join(unverified)}"
        if device.notes:
            basis += f"; {device.notes}"
        cores = core_specs()
        sources = list(device.sources) + sorted({cores[c.core].source for c, _ in device.thread_cores(threads)})
    p50 = predict(kernels, compute, scale, params, device.memory.peak_gbs)
    if runtime != FIT_RUNTIME:
        grade = "C"
        basis = (f"{basis}; fitted on TFLite/LiteRT CPU figures and transferred to {runtime} unchanged: no published "
                 f"{runtime} figure on any device, so the runtime transfer itself is unmeasured")
    iv = fit.interval(grade)
    low, high = (p50 * iv[0], p50 * iv[1]) if iv else (None, None)
    error = fit.stats(grade)
    basis += (f"; 80 % interval from {'leave-one-model-out' if grade == 'B' else 'leave-one-device-out'} errors on "
              f"{error.get('rows', 0)} published rows; host-transferred class efficiencies: {fit.host.where}")
    return Estimate(device.name, runtime, precision, threads, _ms(p50), _ms(low), _ms(high), grade, basis,
                    tuple(sources), model, error)


def _accelerators(model: str | None, device: DeviceSpec, fmt: str, precision: str,
                  table: PublishedTable) -> list[Estimate]:
    out = []
    for acc in device.accelerators:
        if acc.delegate not in DELEGATES.get(fmt, ()):
            continue
        # Core ML picks the compute precision itself (the Neural Engine runs fp16): any float row
        wanted = FLOAT if (fmt == "coreml" and precision in FLOAT) else (precision,)
        rows = _published(table, model, device, acc.delegate, wanted, None)
        if rows:
            out.append(_grade_a(table, rows, device, acc.delegate, precision, None))
        else:
            what = table.models[model].display if model else "this network (not one of the published ones)"
            out.append(_not_estimable(device, acc.delegate, precision, None,
                                      f"{acc.name}: no published {precision} figure for {what} on this device; "
                                      "accelerators are never estimated without one", model, (acc.source,)))
    return out


def estimate(fmt: str, artifact: Path, precision: str, devices: Sequence[str | DeviceSpec],
             host: HostTransfer | None = None) -> tuple[Estimate, ...]:
    """Estimates of the artifact at ``artifact`` (format ``fmt``, exported at ``precision``) on
    each device: the CPU runtime, then each accelerator that runs the format."""
    specs = [d if isinstance(d, DeviceSpec) else load_device(d) for d in devices]
    if not specs:
        return ()
    if fmt == "tfjs":
        return tuple(_not_estimable(d, "tfjs-wasm", precision, None, "browser latency is measured in Chromium on this "
                                    "host (see the runtimes' latency), never estimated") for d in specs)
    try:
        kernels = artifact_kernels(fmt, Path(artifact))
    except NotEstimable as exc:
        return tuple(_not_estimable(d, CPU_RUNTIME.get(fmt, fmt), precision, d.threads, str(exc)) for d in specs)
    return estimate_kernels(kernels, fmt, precision, specs, host)


def estimate_kernels(kernels: Sequence[Kernel], fmt: str, precision: str, devices: Sequence[str | DeviceSpec],
                     host: HostTransfer | None = None) -> tuple[Estimate, ...]:
    """Estimates of a kernel list as if exported in format ``fmt`` at ``precision``."""
    specs = [d if isinstance(d, DeviceSpec) else load_device(d) for d in devices]
    table = published_table()
    model = identify(kernels)
    fit = fitted(host if host is not None else measure_host())
    out: list[Estimate] = []
    for d in specs:
        out.append(_cpu(kernels, model, d, fmt, precision, fit, table))
        out += _accelerators(model, d, fmt, precision, table)
    return tuple(out)
