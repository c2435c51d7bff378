"""``--precision auto``: the profile picks, by judging candidates as exported artifacts in the
target's own runtime.

Candidates are the target's precisions (and, with ``compress``, the same under structured
pruning with distillation), each exported and judged on a *selection* split of the data: the
first third of the golden samples (at least 32, or half of fewer), in a seeded order. A candidate fits when every check of its
report passes and the artifact loses at most the budget's accuracy (``[budgets]
accuracy_drop_max``, 1 point by default) against the original model. Among those that fit, the
objective picks: the fewest artifact bytes (``size``) or the lowest p50 in the target's runtime
(``latency``). The fp32 baseline without compression is always judged first, so the search never
ends with nothing. The pick is then exported again and judged on the rest — the held-out split
its bundle's ``golden.npz`` keeps — like any export. A pick that fails there gives way to the
next fitting candidate, down to the baseline, and the report lists each such fall-back.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .compression.request import CompressionRequest
from .errors import ConfigError
from .precision import Precision
from .strict import limits

if TYPE_CHECKING:  # pragma: no cover
    from .progress import Progress
    from .targets.profile import Plan, Profile
    from .validation.report import Report

#: bytes per weight each precision stores (the order a size search tries them in)
_BYTES_PER_WEIGHT = {Precision.LUT4: 0.5, Precision.INT8: 1.0, Precision.INT8_DYNAMIC: 1.0, Precision.LUT8: 1.0,
                     Precision.FP16: 2.0, Precision.BF16: 2.0, Precision.FP32: 4.0}
#: the compression a search adds with ``compress``: channel pruning recovered by distillation
COMPRESSION_CANDIDATES: tuple[tuple[str, CompressionRequest], ...] = (
    ("channels 0.5 + kd", CompressionRequest(prune_channels=0.5, recover="kd")),
)
#: share of the golden samples judged while choosing (the rest judge the pick) ...
SELECTION_SHARE = 1 / 3
#: ... but at least this many (or half of a smaller set): on a third of 64 photos one flipped
#: prediction is 5 points of agreement, and the pick would be chosen on noise
SELECTION_MIN = 32


@dataclass(frozen=True)
class Auto:
    """What ``--precision auto`` searches for."""

    objective: str = field(default="size", metadata=limits(choices=("size", "latency")))
    #: also try compression candidates (needs train data for the distillation)
    compress: bool = False
    #: seconds the search may take per target; the candidates still untried are reported
    search_time_s: float = field(default=900.0, metadata=limits(min=1.0, unit="seconds"))

    def __post_init__(self) -> None:
        if self.objective not in ("size", "latency"):
            raise ConfigError(f"--objective {self.objective!r}: use size or latency")
        if not self.search_time_s > 0:
            raise ConfigError("--search-time must be positive")


@dataclass(frozen=True)
class Candidate:
    label: str
    plan: "Plan"


def is_auto(precision: "str | Auto | None", profile: "Profile") -> bool:
    return isinstance(precision, Auto) or precision == "auto" or (precision is None and profile.auto)


def candidates(profile: "Profile", auto: Auto, compression: CompressionRequest | None,
               has_train_data: bool) -> list[Candidate]:
    """The baseline first, then every precision (x compression) in the order the objective
    makes likely winners come first."""
    from .targets.profile import resolve_plan

    baseline = resolve_plan(profile, Precision.FP32.value, CompressionRequest(sparsity=0, recover="none",
                                                                               prune_channels=0, low_rank=0))
    out = [Candidate("fp32 (baseline)", baseline)]
    precisions = sorted(profile.precisions, key=lambda p: _BYTES_PER_WEIGHT.get(p, 4.0))
    if auto.objective == "latency":
        precisions = list(profile.precisions)
    variants: list[tuple[str, CompressionRequest | None]] = [("", compression)]
    if auto.compress:
        if not has_train_data:
            raise ConfigError("--compress auto distils pruned candidates from the original model: it needs train "
                              "data (--train-data FILE.npz, labels optional; samples have their own)")
        variants = [*((f" + {name}", req) for name, req in COMPRESSION_CANDIDATES), *variants]
    for suffix, req in variants:
        for p in precisions:
            plan = resolve_plan(profile, p.value, req)
            if not plan.compression and p is Precision.FP32:
                continue  # the baseline
            out.append(Candidate(p.value + suffix, plan))
    return out


def splits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(selection, judgment) sample indices: a seeded third (at least :data:`SELECTION_MIN`, at
    most half) to choose with, the rest to judge."""
    order = np.random.default_rng(0).permutation(n)
    k = max(1, int(round(n * SELECTION_SHARE)), min(SELECTION_MIN, n // 2)) if n > 1 else n
    return np.sort(order[:k]), np.sort(order[k:] if n > 1 else order)


def fits(report: "Report", plan: "Plan") -> tuple[bool, str]:
    """Every check passes and the accuracy loss against the original is within the budget."""
    failing = [f"{c.name}: {c.detail}" for c in report.checks if not c.passed]
    drop = report.accuracy.drop if report.accuracy is not None else None
    if drop is not None and drop > plan.budgets.accuracy_drop_max + 1e-9:
        failing.append(f"accuracy drop {drop * 100:.2f} pt > budget {plan.budgets.accuracy_drop_max * 100:.2f} pt")
    return not failing, "; ".join(failing)


def row(candidate: Candidate, report: "Report | None", error: str | None, seconds: float) -> dict[str, Any]:
    """One candidate as the report's ``auto.candidates[]`` entry."""
    out: dict[str, Any] = {"label": candidate.label, "precision": candidate.plan.precision.value,
                           "compression": [s.kind for s in candidate.plan.compression], "seconds": round(seconds, 1)}
    if report is None:
        return {**out, "passed": False, "why": error or "not produced"}
    ok, why = fits(report, candidate.plan)
    out.update(bytes=report.size.artifact_bytes, ratio=report.size.ratio,
               p50_ms={report.runtime: report.latency.p50_ms,
                       **{r.runtime: r.latency.p50_ms for r in report.runtimes if r.latency is not None}},
               agreement=report.parity.top1_agreement,
               worst_cosine=min((o.cosine for o in report.parity.outputs if o.cosine is not None), default=None),
               drop=report.accuracy.drop if report.accuracy is not None else None, passed=ok, why=why or None)
    return out


def ranking(rows: Sequence[Mapping[str, Any]], objective: str) -> list[int]:
    """Indices of the fitting rows, best first: the fewest bytes or the lowest p50 (ties go to
    the earlier, i.e. less lossy, candidate); the baseline (0) always last if it is not among them."""
    def cost(i: int) -> float:
        r = rows[i]
        if objective == "latency":
            return float(next(iter(r["p50_ms"].values())) or np.inf)
        return float(r["bytes"])

    order = sorted((i for i, r in enumerate(rows) if r.get("passed")), key=lambda i: (cost(i), i))
    return order if 0 in order else [*order, 0]


def pick(rows: Sequence[Mapping[str, Any]], objective: str) -> int:
    """Index of the winning row (the baseline, 0, when none fits)."""
    return ranking(rows, objective)[0]


def search(auto: Auto, options: Sequence[Candidate], judge: Callable[[Candidate], "Report"],
           progress: "Progress") -> tuple[list[Candidate], dict[str, Any]]:
    """Judge ``options`` in order within ``auto.search_time_s`` (the baseline always): the
    fitting candidates best first (the baseline last) and the ``auto`` block."""
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    untried: list[str] = []
    with progress.bar(len(options), "auto search", unit="candidate") as bar:
        for i, cand in enumerate(options):
            if i and time.perf_counter() - t0 > auto.search_time_s:
                untried.append(cand.label)
                continue
            c0 = time.perf_counter()
            try:
                report, error = judge(cand), None
            except Exception as exc:  # a candidate that cannot be produced is a failed candidate
                report, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
            rows.append(row(cand, report, error, time.perf_counter() - c0))
            best = options[pick(rows, auto.objective)].label if any(r["passed"] for r in rows) else "none yet"
            status = "fits" if rows[-1]["passed"] else "does not fit"
            size = f", {rows[-1]['bytes'] / 1024:.1f} KB" if rows[-1].get("bytes") else ""
            bar.advance(f"auto {i + 1}/{len(options)}: {cand.label} {status}{size} "
                        f"({time.perf_counter() - t0:.0f} s; best so far: {best})", f"best so far: {best}")
    order = ranking(rows, auto.objective)
    chosen = order[0]
    fitted = [r for r in rows[1:] if r["passed"]]  # beyond the baseline
    block: dict[str, Any] = {
        "objective": auto.objective, "candidates": rows, "untried": untried,
        "pick": rows[chosen]["label"],
        "why": (f"{'fewest bytes' if auto.objective == 'size' else 'lowest p50'} of the "
                f"{len(fitted) + bool(rows[0]['passed'])} candidate(s) that pass every check within the budget"
                if fitted else
                "no candidate beyond the fp32 baseline fits the budget: the baseline is bundled (each "
                "candidate's why is listed)"),
        "search_s": round(time.perf_counter() - t0, 1),
    }
    if not fitted and len(rows) > 1:
        closest = max(range(1, len(rows)), key=lambda i: (rows[i].get("worst_cosine") or -2.0, -i))
        block["closest"] = rows[closest]["label"]
    tried = [c for c in options if c.label not in untried]
    return [tried[i] for i in order], block
