"""index.html of a multi-target export: one row per target, linking each bundle's report.html."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from .markup import Safe, badge, esc, join, number, page, tag


@dataclass(frozen=True)
class IndexRow:
    """One target of the export: its report (report.json's dict) and the bundle's folder name
    relative to the index, or the error that stopped it and its log's name."""

    target: str
    report: Mapping[str, Any] | None
    bundle: str | None
    error: str | None = None
    log: str | None = None


def _link(rel: str, text: Any) -> Safe:
    return tag("a", text, href=quote(rel))


def _headline(parity: Mapping[str, Any]) -> str:
    agree = parity.get("top1_agreement")
    if agree is not None:
        return f"agreement {agree:.4f}"
    cos = parity.get("cosine_min")
    return f"worst cosine {cos:.5f}" if cos is not None else "–"


def _row(row: IndexRow) -> Safe:
    log = _link(row.log, "log") if row.log else Safe("")
    r = row.report
    if r is None:
        cells = [esc(row.target), Safe("–"), badge(False, no="ERROR"), Safe("–"), Safe("–"), Safe("–"),
                 Safe(esc(row.error or "could not be produced") + " " + log)]
        return tag("tr", join(tag("td", c) for c in cells), class_="bad")
    size, lat = r.get("size") or {}, r.get("latency") or {}
    p50 = lat.get("p50_ms")
    report_link = f"{row.bundle}/report.html" if row.bundle else None
    cells = [_link(report_link, row.target) if report_link else esc(row.target), esc(r.get("precision")),
             badge(r.get("passed"), "PASS", "FAIL"), number(size.get("ratio")),
             esc(_headline(r.get("parity") or {})),
             Safe(esc(f"{p50:.4g}" if p50 is not None else "–") + tag("span", f" {lat.get('runtime', '')}",
                                                                       class_="muted")),
             Safe((_link(report_link, row.bundle) if report_link else esc("")) + " " + log)]
    return tag("tr", join(tag("td", c, class_="num" if i in (3, 5) else None) for i, c in enumerate(cells)),
               class_=None if r.get("passed") else "bad")


def render_index(model: str, rows: Sequence[IndexRow]) -> str:
    """The summary page: target, precision, result, size ratio, headline parity, p50, bundle or error."""
    ok = sum(1 for r in rows if r.report is not None and r.report.get("passed"))
    head = tag("tr", join(tag("th", h) for h in ("target", "precision", "result", "size ratio", "parity",
                                                  "p50 ms", "bundle / error")))
    body = join([tag("h1", f"{model}: {len(rows)} targets"),
                 tag("p", f"{ok} of {len(rows)} targets passed every check", class_="sub"),
                 tag("table", head + join(_row(r) for r in rows))])
    return page(f"edgeport: {model}", body)
