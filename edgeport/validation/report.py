"""The validation report: frozen data, rendered to the terminal or JSON by the caller."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    """Everything the contract's report.json holds, plus per-runtime results and facts."""

    edgeport_version: str
    model: str
    target: str
    format: str
    runtime: str
    precision: str
    sparsity: float
    size: dict[str, Any]
    parity: dict[str, Any]
    accuracy: dict[str, Any] | None
    latency: dict[str, Any]
    ops: dict[str, Any]
    checks: tuple[Check, ...]
    runtimes: tuple[dict[str, Any], ...] = ()
    precision_facts: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] | None = None
    device: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "edgeport_version": self.edgeport_version, "model": self.model, "target": self.target,
            "format": self.format, "runtime": self.runtime, "precision": self.precision,
            "sparsity": self.sparsity, "passed": self.passed, "size": self.size, "parity": self.parity,
            "accuracy": self.accuracy, "latency": self.latency, "ops": self.ops,
            "checks": [c.to_dict() for c in self.checks], "runtimes": list(self.runtimes),
            "precision_facts": self.precision_facts, "pruning": self.pruning, "device": self.device,
            "timings_s": self.timings_s,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        fields = {k: d.get(k) for k in cls.__dataclass_fields__}
        fields["checks"] = tuple(Check(**c) for c in d.get("checks", ()))
        fields["runtimes"] = tuple(d.get("runtimes", ()))
        for key, default in (("precision_facts", {}), ("device", {}), ("timings_s", {})):
            fields[key] = fields[key] or default
        return cls(**fields)
