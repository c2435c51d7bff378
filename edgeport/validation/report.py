"""The validation report: frozen, typed blocks, rendered to the terminal or JSON by the caller.

Each block's ``to_dict()`` gives the report.json keys of the contract (../DESIGN.md); figures are
plain numbers in the units their keys name.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class OutputParity:
    """Error statistics of one output against its reference, and the verdict on them."""

    name: str
    samples: int
    max_abs: float | None
    mean_abs: float | None
    max_abs_rel: float | None
    cosine: float | None
    cosine_min: float | None
    sqnr_db: float | None   # None: the artifact's output held NaN or an infinity
    passed: bool
    #: samples whose output held NaN or an infinity (the figures above are then null)
    nonfinite_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Parity:
    samples: int
    top1_agreement: float | None
    outputs: tuple[OutputParity, ...]
    reference: str = "source model"
    runtime: str = ""
    golden_inputs: str = ""
    #: with compression: the same artifact against the *original* model
    vs_original: "Parity | None" = None
    #: what the runtime's run proves and cannot (emulated runtimes say so)
    runtime_facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cosine_min(self) -> float | None:
        values = [o.cosine_min for o in self.outputs]
        return None if any(v is None for v in values) else min(values, default=1.0)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"samples": self.samples, "top1_agreement": self.top1_agreement,
                             "outputs": [o.to_dict() for o in self.outputs], "cosine_min": self.cosine_min}
        if self.reference:
            d["reference"] = self.reference
        if self.runtime:
            d["runtime"] = self.runtime
        if self.golden_inputs:
            d["golden_inputs"] = self.golden_inputs
        if self.vs_original is not None:
            d["vs_original"] = self.vs_original.to_dict()
        if self.runtime_facts:
            d["runtime_facts"] = dict(self.runtime_facts)
        return d


@dataclass(frozen=True)
class Size:
    artifact_bytes: int
    fp32_bytes: int | None
    gzip_bytes: int
    files: int

    @property
    def ratio(self) -> float | None:
        return round(self.artifact_bytes / self.fp32_bytes, 4) if self.fp32_bytes else None

    @property
    def gzip_ratio(self) -> float | None:
        return round(self.gzip_bytes / self.fp32_bytes, 4) if self.fp32_bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {"artifact_bytes": self.artifact_bytes, "fp32_bytes": self.fp32_bytes, "ratio": self.ratio,
                "gzip_bytes": self.gzip_bytes, "gzip_ratio": self.gzip_ratio, "files": self.files}


#: task metrics where a smaller figure is better: their ``drop`` is the artifact's increase
LOWER_IS_BETTER = frozenset({"mae"})


def _figure(x: float | None) -> float | None:
    """A figure for JSON: rounded, and null when it is not a finite number (an artifact's NaN)."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _finite_only(value: Any) -> Any:
    """Free-form facts (an exporter's, the auto search's) made fit for JSON: a float that is not
    finite (a lossless trial's SQNR) becomes null, as in every figure."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(v) for v in value]
    return value


def _drop(metric: str, reference: float, artifact: float) -> float:
    """How much worse the artifact is on ``metric``: accuracy lost, or (lower is better) error gained."""
    return artifact - reference if metric in LOWER_IS_BETTER else reference - artifact


@dataclass(frozen=True)
class OutputTask:
    """Task metrics of one labelled output, for the source model and the artifact, and its check.

    ``metric`` names the figure the check judges (``top1``, ``pixel_accuracy``, ``mae``); it is a
    key of ``reference`` and ``artifact``, which hold every figure of the kind. ``agreement`` is
    the share of equal arg-max classes (per sample or per pixel) for the classification kinds."""

    name: str
    kind: str
    metric: str
    samples: int
    reference: Mapping[str, float | None]
    artifact: Mapping[str, float | None]
    check: str
    passed: bool
    agreement: float | None = None
    #: what the figures rest on: classes, pixels, the labels' standard deviation, further drops
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def drop(self) -> float:
        return _drop(self.metric, float(self.reference[self.metric]), float(self.artifact[self.metric]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "metric": self.metric, "samples": self.samples,
                "reference": {k: _figure(v) for k, v in self.reference.items()},
                "artifact": {k: _figure(v) for k, v in self.artifact.items()},
                "drop": _figure(self.drop), "agreement": _figure(self.agreement),
                **{k: (_figure(v) if isinstance(v, float) else v) for k, v in self.facts.items()},
                "check": self.check, "passed": self.passed}


@dataclass(frozen=True)
class Accuracy:
    """The task metric: ``metric``/``reference``/``artifact``/``drop`` are the first labelled
    output's (the contract's keys); ``outputs`` every labelled output's."""

    metric: str
    reference: float
    artifact: float
    samples: int
    outputs: tuple[OutputTask, ...] = ()

    @classmethod
    def of(cls, outputs: tuple[OutputTask, ...]) -> "Accuracy":
        head = outputs[0]
        return cls(head.metric, float(head.reference[head.metric]), float(head.artifact[head.metric]),
                   head.samples, outputs)

    @property
    def drop(self) -> float:
        return round(_drop(self.metric, self.reference, self.artifact), 6)

    def to_dict(self) -> dict[str, Any]:
        d = {"metric": self.metric, "reference": _figure(self.reference), "artifact": _figure(self.artifact),
             "drop": _figure(self.drop), "samples": self.samples}
        if self.outputs:
            d["outputs"] = [o.to_dict() for o in self.outputs]
        return d


@dataclass(frozen=True)
class Latency:
    """Percentiles in ms of one runtime on this host, and how they were obtained."""

    provenance: str
    runtime: str
    where: str
    threads: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    runs: int
    load_ms: float
    #: what the runtime adds (TF.js: backend, version, first-inference time)
    details: Mapping[str, Any] = field(default_factory=dict)
    #: device-style estimates (``--device``), each with its grade and basis: plain dicts of
    #: :class:`edgeport.validation.estimate.Estimate`
    estimates: tuple[Mapping[str, Any], ...] = ()
    #: the raw timed runs (ms) the percentiles come from, for report.html's histogram; not in report.json
    times_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("details", "estimates", "times_ms")}
        if self.estimates:
            d["estimates"] = [dict(e) for e in self.estimates]
        return {**d, **dict(self.details)}


@dataclass(frozen=True)
class Ops:
    """``used``: op type names; ``unsupported``: ops the target's runtime/delegate would not take
    (for Android: ops falling back from NNAPI to the CPU). ``blocking`` unsupported ops fail the
    check (e.g. an op TF.js cannot run); non-blocking ones are only reported (NNAPI fallback)."""

    used: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    blocking: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"used": sorted(set(self.used)), "unsupported": sorted(set(self.unsupported)), **dict(self.details)}


@dataclass(frozen=True)
class Compression:
    """The torch-level steps applied before conversion (``steps``: each StepReport as data)."""

    steps: tuple[Mapping[str, Any], ...]
    recovery: Mapping[str, Any] | None = None
    #: the compressed torch model's task metrics against the original's (the compression budget's
    #: figure; conversion is judged apart)
    accuracy: "Accuracy | None" = None
    budget: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [dict(s) for s in self.steps], "recovery": self.recovery,
                "accuracy": self.accuracy.to_dict() if self.accuracy is not None else None,
                "budget": dict(self.budget)}


@dataclass(frozen=True)
class RuntimeRun:
    """A second runtime's run of the same artifact (parity and latency, or why it failed)."""

    runtime: str
    parity: Parity | None = None
    latency: Latency | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"runtime": self.runtime, "error": self.error}
        return {"runtime": self.runtime, "parity": self.parity.to_dict() if self.parity else None,
                "latency": self.latency.to_dict() if self.latency else None}


@dataclass(frozen=True)
class Report:
    """Everything the contract's report.json holds, plus per-runtime results and facts.
    Blocks are None when they could not be measured (a bundle whose files failed integrity)."""

    edgeport_version: str
    model: str
    target: str
    format: str
    runtime: str
    precision: str
    sparsity: float
    size: Size | None
    parity: Parity | None
    accuracy: Accuracy | None
    latency: Latency | None
    ops: Ops | None
    checks: tuple[Check, ...]
    runtimes: tuple[RuntimeRun, ...] = ()
    precision_facts: Mapping[str, Any] = field(default_factory=dict)
    compression: Compression | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    #: per input and output: the source's name, shape and dtype beside the artifact's, and layout
    io: Mapping[str, Any] = field(default_factory=dict)
    #: ``--precision auto``: the objective, the budget, every candidate judged and the pick
    auto: Mapping[str, Any] | None = None
    #: the task judged: its name, whether it was declared, why, the classifier output
    task: Mapping[str, Any] | None = None
    #: the artifact's outputs on the golden inputs (source layout), for report.html's error plots;
    #: not in report.json
    artifact_outputs: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        def block(b: Any) -> Any:
            return b.to_dict() if b is not None else None

        return {
            "edgeport_version": self.edgeport_version, "model": self.model, "target": self.target,
            "format": self.format, "runtime": self.runtime, "precision": self.precision,
            "sparsity": self.sparsity, "passed": self.passed, "size": block(self.size) or {},
            "parity": block(self.parity) or {}, "accuracy": block(self.accuracy),
            "latency": block(self.latency) or {}, "ops": block(self.ops) or {},
            "checks": [c.to_dict() for c in self.checks], "runtimes": [r.to_dict() for r in self.runtimes],
            "precision_facts": _finite_only(dict(self.precision_facts)), "compression": block(self.compression),
            "device": dict(self.device), "timings_s": dict(self.timings_s), "io": dict(self.io),
            **({"auto": _finite_only(dict(self.auto))} if self.auto is not None else {}),
            **({"task": dict(self.task)} if self.task is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)
