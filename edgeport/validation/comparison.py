"""Two sets of outputs held against each other: which output of one answers which output of the
other, in which layout, and whether the pair meets a tolerance row. Values, not verdicts printed:
``edgeport compare`` runs the artifacts and renders what this returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import RuntimeLoadError
from .layout import to_source_layout
from .metrics import ErrorStats
from .verdict import judge_outputs

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.tolerances import Tolerance

BY_NAME = "name"
BY_SHAPE = "shape and order"


@dataclass(frozen=True)
class OutputMatch:
    """One reference output and the candidate's output that answers it.

    ``transposed`` says which side was brought from channels-last to channels-first before the
    figures were taken (``"candidate"``, ``"reference"``, or None); ``stats`` is None when the two
    shapes could not be brought together (``problems`` says why)."""

    reference_output: str
    output: str
    matched_by: str
    layout: str
    transposed: str | None
    stats: ErrorStats | None
    top1_agreement: float | None
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"reference_output": self.reference_output, "output": self.output,
                "matched_by": self.matched_by, "layout": self.layout, "transposed": self.transposed,
                **({k: v for k, v in self.stats.to_dict().items() if k != "name"} if self.stats else {}),
                "top1_agreement": self.top1_agreement, "passed": self.passed, "problems": list(self.problems)}


@dataclass(frozen=True)
class PairComparison:
    """A candidate against the reference: every matched output, the reference outputs nothing of
    the candidate answers (``missing``: a failure) and the candidate's outputs left over
    (``extra``: reported, not judged)."""

    reference: str
    candidate: str
    outputs: tuple[OutputMatch, ...]
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def problems(self) -> list[str]:
        found = [f"{m.reference_output}: {p}" for m in self.outputs for p in m.problems]
        return found + [f"{name}: no output of {self.candidate} matches it by name or shape" for name in self.missing]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "candidate": self.candidate, "passed": self.passed,
                "outputs": [m.to_dict() for m in self.outputs], "missing": list(self.missing),
                "extra": list(self.extra), "problems": self.problems}


def _per_sample(shape: tuple[int, ...]) -> list[int]:
    return list(shape[1:])


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def align(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str | None] | None:
    """``(reference, candidate)`` in one shape, how, and which side was transposed — or None when
    no layout change explains the two shapes. Either side may be the channels-last one (a TFLite
    reference against an ONNX candidate, or the other way round); values are only ever transposed
    by :func:`~edgeport.validation.layout.to_source_layout`, never reshaped into new shapes."""
    rs, cs = tuple(reference.shape), tuple(candidate.shape)
    if rs == cs:
        sizes = set(rs[1:])
        ambiguous = 3 <= len(rs) <= 5 and len(sizes) == 1 and sizes != {1}
        note = "; the shape cannot tell channels-first from channels-last: compared as given" if ambiguous else ""
        return reference, candidate, f"same shape {_per_sample(rs)}{note}", None
    for side, target, moved in (("candidate", reference, candidate), ("reference", candidate, reference)):
        try:
            brought = to_source_layout({"o": target}, {"o": moved})[0]["o"]
        except RuntimeLoadError:
            continue
        ref, cand = (reference, brought) if side == "candidate" else (brought, candidate)
        ms, ts = tuple(moved.shape), tuple(target.shape)
        if _squeezed(ms) == _squeezed(ts):
            return ref, cand, f"{side}'s {_per_sample(ms)} read as {_per_sample(ts)} (size-1 axes only)", None
        how = f"{side}'s {_per_sample(ms)} is channels-last: transposed to the channels-first {_per_sample(ts)}"
        return ref, cand, f"{how} for comparison", side
    return None


def _fits(reference: np.ndarray, candidate: np.ndarray, exact: bool) -> bool:
    if exact:
        return tuple(reference.shape) == tuple(candidate.shape)
    return align(reference, candidate) is not None


def match_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
                  ) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """``(reference name, candidate name, how)`` for every reference output that finds a
    counterpart, in the reference's order; then the reference outputs left without one and the
    candidate's outputs left over. The same name wins; what is left is paired by shape in order —
    first identical shapes, then shapes a layout change explains."""
    pairs = {n: (n, BY_NAME) for n in reference if n in candidate}
    free = [k for k in candidate if k not in reference]
    for exact in (True, False):
        for name in reference:
            if name in pairs:
                continue
            hit = next((k for k in free if _fits(reference[name], candidate[k], exact)), None)
            if hit is not None:
                pairs[name] = (hit, BY_SHAPE)
                free.remove(hit)
    matched = [(n, *pairs[n]) for n in reference if n in pairs]
    return matched, [n for n in reference if n not in pairs], free


def is_classifier_like(values: np.ndarray) -> bool:
    """``[N, C]`` with C >= 2 of floats: scores over classes, whose arg-max may be compared."""
    return values.ndim == 2 and values.shape[1] >= 2 and values.dtype.kind == "f"


def compare_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tol: "Tolerance",
                    names: tuple[str, str]) -> PairComparison:
    """The candidate's outputs against the reference's, judged with ``tol`` by the same criteria
    as export's parity check (:func:`~edgeport.validation.verdict.judge_outputs`). ``names`` are
    the reference's and the candidate's labels, for the result."""
    matched, missing, extra = match_outputs(reference, candidate)
    results = []
    for ref_name, cand_name, how in matched:
        ref, cand = np.asarray(reference[ref_name]), np.asarray(candidate[cand_name])
        if len(ref) != len(cand):
            results.append(OutputMatch(ref_name, cand_name, how, "", None, None, None,
                                       (f"{len(cand)} samples, the reference {len(ref)}",)))
            continue
        aligned = align(ref, cand)
        if aligned is None:
            why = (f"{cand_name} has shape {_per_sample(cand.shape)}, the reference {_per_sample(ref.shape)}; "
                   "no layout change explains it")
            results.append(OutputMatch(ref_name, cand_name, how, "", None, None, None, (why,)))
            continue
        ref, cand, layout, transposed = aligned
        classifier = ref_name if is_classifier_like(ref) else None
        (stats,), agreement, problems = judge_outputs({ref_name: ref}, {ref_name: cand}, tol, classifier)
        results.append(OutputMatch(ref_name, cand_name, how, layout, transposed, stats, agreement,
                                   tuple(p.removeprefix(f"{ref_name}: ") for p in problems)))
    return PairComparison(names[0], names[1], tuple(results), tuple(missing), tuple(extra))


@dataclass(frozen=True)
class Compared:
    """One thing compared: an artifact run in ``runtime``, or (``kind == "npz"``) stored outputs."""

    path: str
    kind: str
    runtime: str | None
    #: output name -> per-sample shape, in the order the runtime (or the npz) gives them
    outputs: dict[str, list[int]]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "runtime": self.runtime, "outputs": self.outputs}


@dataclass(frozen=True)
class Comparison:
    """Every candidate against the reference on the same ``samples`` inputs from ``data``, judged
    with the ``tolerance`` row of the table (``limits``)."""

    data: str
    samples: int
    tolerance: str
    limits: "Tolerance"
    reference: Compared
    candidates: tuple[Compared, ...]
    pairs: tuple[PairComparison, ...]

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "data": self.data, "samples": self.samples, "tolerance": self.tolerance,
                "limits": self.limits.to_dict(), "reference": self.reference.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates], "pairs": [p.to_dict() for p in self.pairs]}
