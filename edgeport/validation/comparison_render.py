"""A comparison for people (a text table per pair) and for CI (JUnit XML: one suite per pair, one
test case for the pair and one per output check)."""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .comparison import Comparison, OutputMatch, PairComparison

_COLUMNS = ("output", "matched to", "layout", "max_abs", "max_abs_rel", "cosine", "sqnr_db", "top1", "result")


def _figure(x: float | None, fmt: str) -> str:
    if x is None:
        return "-"
    if math.isnan(x):
        return "nan"
    if x == float("inf"):
        return "inf"
    return format(x, fmt)


def _layout_word(m: OutputMatch) -> str:
    if m.stats is None:
        return "-"
    if m.transposed:
        return f"transposed ({m.transposed})"
    return "size-1 axes" if "size-1" in m.layout else "same"


def _row(m: OutputMatch) -> tuple[str, ...]:
    st = m.stats
    return (m.reference_output, f"{m.output} ({m.matched_by})", _layout_word(m),
            _figure(st and st.max_abs, ".3g"), _figure(st and st.max_abs_rel, ".3g"),
            _figure(st and st.cosine, ".6f"), _figure(st and st.sqnr_db, ".1f"),
            _figure(m.top1_agreement, ".4f"), "ok" if m.passed else "FAIL: " + "; ".join(m.problems))


def _pair_lines(cmp: Comparison, pair: PairComparison) -> list[str]:
    cand = next(c for c in cmp.candidates if c.path == pair.candidate)
    where = f"{cand.kind}, {cand.runtime}" if cand.runtime else cand.kind
    lines = [f"{pair.candidate} ({where}) vs {pair.reference}: {'PASS' if pair.passed else 'FAIL'}"]
    rows = [_COLUMNS] + [_row(m) for m in pair.outputs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    for m in pair.outputs:
        if m.transposed or "cannot tell" in m.layout:
            lines.append(f"  {m.reference_output}: {m.layout}")
    lines += [f"  {name}: FAIL: no output of {pair.candidate} matches it by name or shape" for name in pair.missing]
    if pair.extra:
        lines.append(f"  not compared (no reference output left for them): {', '.join(pair.extra)}")
    return lines


def render_comparison(cmp: Comparison) -> str:
    """The comparison as a text table per pair and a closing summary line."""
    t = cmp.limits
    ref = cmp.reference
    where = f"{ref.kind}, {ref.runtime}" if ref.runtime else "stored outputs"
    limits = (f"tolerance {cmp.tolerance}: cosine >= {t.cosine_min}, sqnr >= {t.sqnr_db_min} dB, "
              f"max_abs_rel <= {t.max_abs_rel_max}, top-1 agreement >= {t.top1_agreement_min} ([N, C] outputs)")
    lines = [f"reference: {ref.path} ({where}); {cmp.samples} samples from {cmp.data}", limits, ""]
    for pair in cmp.pairs:
        lines += _pair_lines(cmp, pair) + [""]
    within = sum(p.passed for p in cmp.pairs)
    lines.append(f"{within} of {len(cmp.pairs)} pair(s) within {cmp.tolerance} tolerance")
    return "\n".join(lines)


def _case(suite: ET.Element, classname: str, name: str, problems: list[str], detail: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name)
    if problems:
        text = "; ".join(problems)
        ET.SubElement(case, "failure", message=text[:500]).text = text
    else:
        ET.SubElement(case, "system-out").text = detail


def _output_cases(suite: ET.Element, classname: str, m: OutputMatch) -> int:
    """The output's parity case, and its top-1 agreement case when it has one; failures counted."""
    agreement = [p for p in m.problems if p.startswith("top-1 agreement")]
    values = [p for p in m.problems if p not in agreement]
    st = m.stats
    detail = (f"matched to {m.output} by {m.matched_by}; {m.layout}" +
              (f"; cosine {st.cosine:.6f}, sqnr {st.sqnr_db:.1f} dB, max_abs {st.max_abs:.3g}" if st else ""))
    _case(suite, classname, f"parity:{m.reference_output}", values, detail)
    if m.top1_agreement is None:
        return int(bool(values))
    _case(suite, classname, f"top1_agreement:{m.reference_output}", agreement, f"{m.top1_agreement:.4f}")
    return int(bool(values)) + int(bool(agreement))


def write_comparison_junit(path: str | Path, cmp: Comparison) -> Path:
    """Write ``cmp`` as JUnit XML at ``path`` (replaced in one step: never half-written)."""
    root = ET.Element("testsuites", name="edgeport compare")
    total = failures = 0
    for pair in cmp.pairs:
        classname = f"{pair.candidate} vs {pair.reference}"
        suite = ET.SubElement(root, "testsuite", name=classname)
        props = ET.SubElement(suite, "properties")
        for key, value in (("reference", pair.reference), ("candidate", pair.candidate),
                           ("tolerance", cmp.tolerance), ("samples", cmp.samples)):
            ET.SubElement(props, "property", name=key, value=str(value))
        _case(suite, classname, "pair", pair.problems, f"within {cmp.tolerance} tolerance")
        failed = int(not pair.passed)
        cases = 1
        for m in pair.outputs:
            failed += _output_cases(suite, classname, m)
            cases += 1 + (m.top1_agreement is not None)
        for name in pair.missing:
            _case(suite, classname, f"parity:{name}", [f"no output of {pair.candidate} matches it"], "")
            failed += 1
            cases += 1
        suite.set("tests", str(cases))
        suite.set("failures", str(failed))
        total += cases
        failures += failed
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
