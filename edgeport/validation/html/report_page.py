"""The bundle's report.html, built from report.json's dict and the plots already drawn.

Known blocks get their own section; any top-level key this page does not know (a block added
later) is still shown, generically, under "More". Building the page draws nothing: plots come in
as ``figures`` (see :mod:`.plots`), so the markup is testable without matplotlib.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .markup import Safe, badge, esc, figure, join, kv_table, page, records, tag, value

_LATENCY_COLUMNS = ("runtime", "provenance", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs",
                    "load_ms", "where")
_HEADER_KEYS = ("edgeport_version", "model", "target", "format", "runtime", "precision", "sparsity", "passed")


@dataclass(frozen=True)
class Figures:
    """Plots as PNG data: URIs, or why each is missing (``problems``, keyed alike)."""

    outputs: Mapping[str, str] = field(default_factory=dict)
    latency: Mapping[str, str] = field(default_factory=dict)
    size: str | None = None
    problems: Mapping[str, str] = field(default_factory=dict)
    #: artifact files and their bytes (the size breakdown)
    files: Sequence[tuple[str, int]] = ()


def _section(title: str, *parts: Any, anchor: str = "") -> Safe:
    return Safe(tag("h2", title, id=anchor or None) + join(parts))


def _header(r: Mapping[str, Any]) -> Safe:
    title = f"{r.get('model')} → {r.get('target')}"
    facts = [f"{k} {r[k]}" for k in ("format", "runtime", "precision") if r.get(k) is not None]
    if r.get("sparsity"):
        facts.append(f"sparsity {r['sparsity']:g}")
    facts.append(f"edgeport {r.get('edgeport_version')}")
    heading = Safe(esc(title) + " " + badge(r.get("passed"), "PASS", "FAIL", big=True))
    return Safe(tag("h1", heading) + tag("p", " · ".join(facts), class_="sub"))


def _checks(r: Mapping[str, Any]) -> Safe:
    checks = r.get("checks") or []
    passed = sum(1 for c in checks if isinstance(c, Mapping) and c.get("passed"))
    rows = [tag("tr", tag("td", c.get("name")) + tag("td", badge(c.get("passed"))) + tag("td", c.get("detail")),
                class_=None if c.get("passed") else "bad")
            for c in checks if isinstance(c, Mapping)]
    table = tag("table", tag("tr", tag("th", "check") + tag("th", "result") + tag("th", "detail")) + join(rows))
    return _section("Checks", tag("p", f"{passed} of {len(checks)} checks passed", class_="sub"), table,
                    anchor="checks")


def _parity(r: Mapping[str, Any], figs: Figures) -> Safe:
    p = r.get("parity") or {}
    if not p:
        return _section("Parity", tag("p", "not measured", class_="muted"))
    parts: list[Any] = [kv_table(p, skip=("outputs", "vs_original", "runtime_facts"))]
    parts.append(records(p.get("outputs") or []))
    reference = p.get("reference", "reference")
    for out in p.get("outputs") or []:
        name = out.get("name")
        caption = f"{name}: artifact ({p.get('runtime', r.get('runtime'))}) against the {reference} — " \
                  f"{out.get('samples')} samples"
        parts.append(tag("h3", f"output {name}"))
        parts.append(figure(figs.outputs.get(name), caption, figs.problems.get(f"output:{name}")))
    if p.get("vs_original"):
        parts += [tag("h3", "against the original (uncompressed) model"), value(p["vs_original"])]
    if p.get("runtime_facts"):
        parts += [tag("h3", "what the runtime's run shows"), value(p["runtime_facts"])]
    return _section("Parity", *parts, anchor="parity")


def _accuracy(r: Mapping[str, Any]) -> Safe:
    a = r.get("accuracy")
    if not a:
        return _section("Task accuracy", tag("p", "no labelled data: the task metric was not measured", class_="muted"))
    return _section("Task accuracy", kv_table(a, skip=("outputs",)), records(a.get("outputs") or []))


def _latency_rows(r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = [r["latency"]] if r.get("latency") else []
    rows += [run["latency"] for run in r.get("runtimes") or [] if isinstance(run, Mapping) and run.get("latency")]
    return rows


def _latency(r: Mapping[str, Any], figs: Figures) -> Safe:
    rows = _latency_rows(r)
    if not rows:
        return _section("Latency", tag("p", "not measured", class_="muted"))
    parts: list[Any] = [records(rows, columns=_LATENCY_COLUMNS)]
    for row in rows:
        name = row.get("runtime")
        caption = f"{name}: {row.get('runs')} timed runs — {row.get('where', '')}"
        parts.append(figure(figs.latency.get(name), caption, figs.problems.get(f"latency:{name}")))
        extra = {k: v for k, v in row.items() if k not in _LATENCY_COLUMNS and k != "estimates"}
        if extra:
            parts += [tag("h3", f"{name}: details"), kv_table(extra)]
    estimates = (r.get("latency") or {}).get("estimates")
    if estimates:
        parts += [tag("h3", "device estimates"), value(estimates)]
    errors = [run for run in r.get("runtimes") or [] if isinstance(run, Mapping) and run.get("error")]
    if errors:
        parts += [tag("h3", "runtimes that could not run the artifact"), records(errors)]
    return _section("Latency", *parts, anchor="latency")


def _other_runtimes(r: Mapping[str, Any]) -> Safe:
    runs = [run for run in r.get("runtimes") or [] if isinstance(run, Mapping) and run.get("parity")]
    if not runs:
        return Safe("")
    parts = []
    for run in runs:
        parts += [tag("h3", f"parity in {run.get('runtime')}"), records(run["parity"].get("outputs") or []),
                  kv_table(run["parity"], skip=("outputs",))]
    return _section("Other runtimes", *parts)


def _size(r: Mapping[str, Any], figs: Figures) -> Safe:
    s = r.get("size") or {}
    if not s:
        return _section("Size", tag("p", "not measured", class_="muted"))
    parts: list[Any] = [kv_table(s), figure(figs.size, "bytes: the fp32 reference, the artifact and its gzip",
                                            figs.problems.get("size"))]
    if figs.files:
        parts += [tag("h3", "artifact files"), records([{"file": f, "bytes": b} for f, b in figs.files])]
    return _section("Size", *parts, anchor="size")


def _ops(r: Mapping[str, Any]) -> Safe:
    o = r.get("ops") or {}
    if not o:
        return _section("Op coverage", tag("p", "not inspected", class_="muted"))
    off = set(o.get("unsupported") or [])
    chips = join(tag("span", op, class_="chip off" if op in off else "chip") for op in o.get("used") or [])
    parts: list[Any] = [tag("p", f"{len(o.get('used') or [])} op kinds used; {len(off)} the target's "
                                 "runtime or delegate would not take (highlighted)", class_="sub"), tag("p", chips)]
    if off:
        parts.append(tag("p", Safe(esc("not taken: ") + join((tag("code", op) for op in sorted(off)), ", "))))
    parts.append(kv_table(o, skip=("used", "unsupported")))
    return _section("Op coverage", *parts, anchor="ops")


def _auto(r: Mapping[str, Any]) -> Safe:
    a = r.get("auto")
    if not isinstance(a, Mapping):
        return Safe("") if a is None else _section("Auto", value(a))
    pick = a.get("pick")
    parts: list[Any] = [kv_table(a, skip=("candidates",))]
    cands = a.get("candidates")
    if isinstance(cands, list) and all(isinstance(c, Mapping) for c in cands) and cands:
        parts += [tag("h3", "candidates (the pick highlighted)"),
                  records(cands, highlight=lambda c: pick is not None and c.get("label") == pick)]
    elif cands is not None:
        parts.append(value(cands))
    return _section("Precision search (auto)", *parts, anchor="auto")


def _block(title: str, v: Any) -> Safe:
    return _section(title, value(v)) if v else Safe("")


def render_report(r: Mapping[str, Any], figs: Figures) -> str:
    """report.html for one bundle: ``r`` is report.json's dict."""
    known = {"checks", "parity", "accuracy", "latency", "runtimes", "size", "ops", "precision_facts",
             "compression", "auto", "io", "device", "timings_s", *_HEADER_KEYS}
    rest = {k: v for k, v in r.items() if k not in known}
    body = join([
        _header(r), _checks(r), _parity(r, figs), _accuracy(r), _latency(r, figs), _other_runtimes(r),
        _size(r, figs), _ops(r), _block("Precision", r.get("precision_facts")),
        _block("Compression", r.get("compression")), _auto(r), _block("Inputs and outputs", r.get("io")),
        _block("Device", r.get("device")), _block("Timings (s)", r.get("timings_s")),
        _block("More", rest),
    ])
    return page(f"edgeport: {r.get('model')} → {r.get('target')}", body)
