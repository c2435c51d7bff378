"""The roofline fitted to the published CPU rows, and how wrong it has been on held-out rows.

For one kernel ``l`` of class ``c`` on a device group ``g`` (device × runtime × precision ×
threads) the time is the roofline

    t_l = max(work_l / (S_g · e_c),  bytes_l / BW)

and a network's time is ``Σ t_l + n_kernels · τ_p``. ``work`` is FLOPs for the compute classes and
bytes for the memory-bound ones; ``S_g`` is the group's 1×1-convolution throughput; ``e_c`` the
class's efficiency relative to it (``e_pointwise = 1``; ``conv`` shared by fp32 and int8,
``depthwise`` one per precision: fitted; the other classes transferred from the host, see
:mod:`.host`); ``τ_p`` a fixed cost per kernel (thread hand-off, dispatch) per precision; ``BW``
the device's published memory bandwidth (no floor when it is not published).

Every parameter is fitted together, in log space, to ``log(published / predicted)``, with a weak
pull (σ = 2 in log space) of the class efficiencies toward 1 and of τ toward 10 µs so that a fit
from few rows stays finite. A device with published rows has its own ``S_g`` (**grade B**); a
device without gets ``S = η_p · peak`` where ``η_p`` is the geometric mean of ``S_g / peak_g``
over the fitted groups whose peak is known (**grade C**).

Held-out error: **leave-one-model-out** refits without every row of one model and predicts those
rows from the rest of their device's rows (the grade-B error); **leave-one-device-out** refits
without every row of one device and predicts them from its specs (the grade-C error). An
estimate's 80 % interval is the 10th–90th percentile of the held-out ratios of its grade.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ...targets.devices import DeviceSpec, builtin_devices
from ...targets.published import PublishedTable, Row, published_table
from .host import HostTransfer
from .kernels import COMPUTE_KINDS, KINDS, Kernel
from .reference_models import BUILDERS, reference_kernels

#: bytes per activation and per weight element when the kernels compute in this precision
ELEMENT_BYTES = {"fp32": (4.0, 4.0), "int8": (1.0, 1.0)}
FIT_PRECISIONS = ("fp32", "int8")
FIT_RUNTIME = "litert-cpu"
PRIOR_SIGMA = 2.0
TAU_PRIOR_MS = 0.01
K0_PRIOR = 16.0
#: quantiles of the held-out ratios an estimate's interval spans
INTERVAL = (0.10, 0.90)

Group = tuple[str, str, str, "int | None"]


@dataclass(frozen=True)
class Params:
    """A fitted roofline: throughput per group, class efficiencies, per-kernel cost, η per precision."""

    scale: Mapping[Group, float]                 # FLOP per ms of a 1×1 convolution
    efficiency: Mapping[tuple[str, str], float]  # (class, precision) -> relative efficiency
    tau_ms: Mapping[str, float]
    k0: Mapping[str, float]                      # precision -> per-output cost, in multiply-adds
    eta: Mapping[str, float]                     # precision -> S / peak (geometric mean)
    eta_groups: Mapping[str, tuple[Group, ...]] = field(default_factory=dict)


def _kernel_arrays(kernels: Sequence[Kernel], precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per kernel: class index, work, bytes moved, and 2 × output elements of compute kernels
    (what the per-output cost ``K0`` multiplies)."""
    act, wgt = ELEMENT_BYTES[precision]
    kinds = np.array([KINDS.index(k.kind) for k in kernels], dtype=np.int64)
    work = np.array([k.work(act, wgt) for k in kernels], dtype=np.float64)
    moved = np.array([k.bytes(act, wgt) for k in kernels], dtype=np.float64)
    outs = np.array([2.0 * k.out_elems if k.kind in COMPUTE_KINDS else 0.0 for k in kernels], dtype=np.float64)
    return kinds, work, moved, outs


def predict(kernels: Sequence[Kernel], precision: str, scale: float, params: Params,
            bandwidth_gbs: float | None) -> float:
    """Milliseconds for ``kernels`` at 1×1-convolution throughput ``scale`` (FLOP/ms)."""
    kinds, work, moved, outs = _kernel_arrays(kernels, precision)
    eff = np.array([params.efficiency[(k, precision)] for k in KINDS])
    t = (work + outs * params.k0[precision]) / (scale * eff[kinds])
    if bandwidth_gbs:
        t = np.maximum(t, moved / (bandwidth_gbs * 1e6))   # GB/s = 1e6 bytes per ms
    return float(t.sum() + len(kernels) * params.tau_ms[precision])


def device_of(name: str) -> DeviceSpec | None:
    return builtin_devices().get(name)


def peak_of(group: Group) -> float | None:
    """Peak FLOP/ms of a group's device at its threads; None when not known."""
    device, _runtime, precision, threads = group
    spec = device_of(device)
    p = spec.peak(precision, threads) if spec is not None else None
    return None if p is None else p * 1e6


def fit_rows(table: PublishedTable) -> tuple[Row, ...]:
    """The rows the roofline is fitted to: CPU (litert-cpu) rows of modelled networks."""
    return tuple(r for r in table.rows if r.runtime == FIT_RUNTIME and r.precision in FIT_PRECISIONS
                 and r.model in BUILDERS)


def fit(rows: Sequence[Row], host: HostTransfer) -> Params:
    """Least squares in log space over ``rows`` (see the module docstring)."""
    from scipy.optimize import least_squares

    groups = sorted({r.key for r in rows}, key=str)
    gi = {g: i for i, g in enumerate(groups)}
    # free parameters after the group scales: log e_conv, log e_dw[fp32], log e_dw[int8], log τ[fp32], log τ[int8]
    n_g = len(groups)
    data = []
    for r in rows:
        kinds, work, moved, outs = _kernel_arrays(reference_kernels(r.model), r.precision)
        spec = device_of(r.device)
        bw = spec.memory.peak_gbs if spec is not None else None
        data.append((gi[r.key], FIT_PRECISIONS.index(r.precision), kinds, work, moved, outs, bw, math.log(r.ms)))
    fixed = {k: math.log(host.ratio(k)) for k in KINDS if k not in ("conv", "depthwise", "pointwise")}

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        log_eff = np.zeros((2, len(KINDS)))
        for k, v in fixed.items():
            log_eff[:, KINDS.index(k)] = v
        log_eff[:, KINDS.index("conv")] = x[n_g]
        log_eff[0, KINDS.index("depthwise")] = x[n_g + 1]
        log_eff[1, KINDS.index("depthwise")] = x[n_g + 2]
        return x[:n_g], log_eff, x[n_g + 3:n_g + 5], np.exp(x[n_g + 5:n_g + 7])

    def residuals(x: np.ndarray) -> np.ndarray:
        log_s, log_eff, log_tau, k0 = unpack(x)
        out = []
        for g, p, kinds, work, moved, outs, bw, log_ms in data:
            t = (work + outs * k0[p]) / np.exp(log_s[g] + log_eff[p][kinds])
            if bw:
                t = np.maximum(t, moved / (bw * 1e6))
            out.append(math.log(t.sum() + len(kinds) * math.exp(log_tau[p])) - log_ms)
        prior = [x[n_g] / PRIOR_SIGMA, x[n_g + 1] / PRIOR_SIGMA, x[n_g + 2] / PRIOR_SIGMA,
                 (x[n_g + 3] - math.log(TAU_PRIOR_MS)) / PRIOR_SIGMA, (x[n_g + 4] - math.log(TAU_PRIOR_MS)) / PRIOR_SIGMA,
                 (x[n_g + 5] - math.log(K0_PRIOR)) / PRIOR_SIGMA, (x[n_g + 6] - math.log(K0_PRIOR)) / PRIOR_SIGMA]
        return np.array(out + prior)

    x0 = np.concatenate([np.full(n_g, math.log(3e7)), [0.0, math.log(0.3), math.log(0.3)],
                         [math.log(TAU_PRIOR_MS)] * 2, [math.log(K0_PRIOR)] * 2])
    lo = np.concatenate([np.full(n_g, math.log(1e5)), [-5.0] * 3, [math.log(1e-5)] * 2, [math.log(0.1)] * 2])
    hi = np.concatenate([np.full(n_g, math.log(1e10)), [3.0] * 3, [math.log(2.0)] * 2, [math.log(4096.0)] * 2])
    sol = least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac")
    log_s, log_eff, log_tau, k0 = unpack(sol.x)
    scale = {g: float(math.exp(log_s[i])) for g, i in gi.items()}
    efficiency = {(k, prec): float(math.exp(log_eff[p, KINDS.index(k)]))
                  for p, prec in enumerate(FIT_PRECISIONS) for k in KINDS}
    eta, eta_groups = {}, {}
    for prec in FIT_PRECISIONS:
        known = [(g, scale[g] / peak) for g in groups if g[2] == prec and (peak := peak_of(g))]
        if known:
            eta[prec] = float(math.exp(np.mean([math.log(v) for _, v in known])))
            eta_groups[prec] = tuple(g for g, _ in known)
    return Params(scale, efficiency, {p: float(math.exp(log_tau[i])) for i, p in enumerate(FIT_PRECISIONS)},
                  {p: float(k0[i]) for i, p in enumerate(FIT_PRECISIONS)}, eta, eta_groups)


@dataclass(frozen=True)
class HeldOut:
    """One published row predicted by a fit that never saw it."""

    row: Row
    grade: str            # "B" (leave-one-model-out) or "C" (leave-one-device-out)
    predicted_ms: float

    @property
    def log_ratio(self) -> float:
        """log(published / predicted): > 0 when the method was too fast."""
        return math.log(self.row.ms / self.predicted_ms)


def spec_scale(params: Params, device: DeviceSpec, precision: str, threads: int | None) -> float | None:
    """Grade C: η × the device's peak (FLOP/ms); None when the peak or η is unknown."""
    peak = device.peak(precision, threads)
    if peak is None or precision not in params.eta:
        return None
    return params.eta[precision] * peak * 1e6


def held_out(rows: Sequence[Row], host: HostTransfer) -> tuple[HeldOut, ...]:
    """Every row predicted leave-one-model-out (grade B) and leave-one-device-out (grade C)."""
    out = []
    for model in sorted({r.model for r in rows}):
        params = fit([r for r in rows if r.model != model], host)
        for r in rows:
            if r.model == model and r.key in params.scale:
                spec = device_of(r.device)
                bw = spec.memory.peak_gbs if spec else None
                out.append(HeldOut(r, "B", predict(reference_kernels(r.model), r.precision, params.scale[r.key],
                                                   params, bw)))
    for device in sorted({r.device for r in rows}):
        spec = device_of(device)
        if spec is None:
            continue
        params = fit([r for r in rows if r.device != device], host)
        for r in rows:
            if r.device == device and (s := spec_scale(params, spec, r.precision, r.threads)) is not None:
                out.append(HeldOut(r, "C", predict(reference_kernels(r.model), r.precision, s, params,
                                                   spec.memory.peak_gbs)))
    return tuple(out)


def interval(log_ratios: Iterable[float]) -> tuple[float, float] | None:
    """(low, high) multipliers of a prediction: the held-out ratios' 10th and 90th percentiles."""
    values = sorted(log_ratios)
    if len(values) < 3:
        return None
    lo, hi = np.quantile(values, INTERVAL)
    return float(math.exp(lo)), float(math.exp(hi))


def error_stats(items: Sequence[HeldOut], pool: Sequence[HeldOut] | None = None) -> dict[str, Any]:
    """How wrong held-out predictions were: median |log error| as a factor, share within ±25 %
    and ±50 %, and the coverage of 80 % intervals built from the *other* held-out rows of
    ``pool`` (default: ``items``)."""
    if not items:
        return {"rows": 0}
    pool = list(items if pool is None else pool)
    r = np.array([h.log_ratio for h in items])
    covered = 0
    for h in items:
        iv = interval(o.log_ratio for o in pool if o is not h)
        covered += int(iv is not None and math.log(iv[0]) <= h.log_ratio <= math.log(iv[1]))
    ratio = np.exp(r)
    return {"rows": len(r), "median_abs_error": round(float(np.exp(np.median(np.abs(r)))) - 1, 4),
            "within_25": round(float(np.mean((ratio >= 1 / 1.25) & (ratio <= 1.25))), 4),
            "within_50": round(float(np.mean((ratio >= 1 / 1.5) & (ratio <= 1.5))), 4),
            "interval_coverage": round(covered / len(r), 4),
            "worst": round(float(np.exp(np.max(np.abs(r)))), 3)}


@dataclass(frozen=True)
class Fitted:
    """The fit on every row, the held-out predictions and the intervals they give."""

    params: Params
    rows: tuple[Row, ...]
    held_out: tuple[HeldOut, ...]
    host: HostTransfer

    def interval(self, grade: str) -> tuple[float, float] | None:
        return interval(h.log_ratio for h in self.held_out if h.grade == grade)

    def stats(self, grade: str, device: str | None = None) -> dict[str, Any]:
        pool = [h for h in self.held_out if h.grade == grade]
        return error_stats([h for h in pool if device is None or h.row.device == device], pool)


@lru_cache(maxsize=4)
def fitted(host: HostTransfer) -> Fitted:
    """The shipped table fitted once per process and host ratios (about a second)."""
    rows = fit_rows(published_table())
    return Fitted(fit(rows, host), rows, held_out(rows, host), host)
