"""HTML building blocks for the report pages: escaping, tables, and a generic view of any value.

Every string that comes from a report (model, op and output names, check details, whatever a
later block adds) is untrusted: it reaches the page only through :func:`esc`. Markup built here
is a :class:`Safe` string, the only kind the builders pass through unescaped.
"""
from __future__ import annotations

import html
import json
import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

#: the page may load nothing: no script, no network; only its inline style and data: images
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:16px 24px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e8;
padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.sub{color:#56606b}.muted{color:#8a939c}
table{border-collapse:collapse;margin:4px 0 10px}th,td{border:1px solid #dde2e8;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f5f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:1%;white-space:nowrap}table.kv td.num{text-align:left}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;font-size:12px}
.pass{background:#dcf3e3;color:#165c2c}.fail{background:#fbe0e0;color:#8a1c1c}.note{background:#eef1f5;color:#3b4650}
.big{font-size:16px;padding:3px 14px}
tr.bad td{background:#fff6f6}tr.pick td{background:#f1f8ff}
.chip{display:inline-block;margin:2px;padding:1px 6px;border-radius:4px;background:#eef1f5;font:12px monospace}
.chip.off{background:#fde7c8}
figure{margin:6px 0 14px}figcaption{color:#56606b;font-size:12px}img{max-width:100%}
code{font:12px monospace;background:#f3f5f8;padding:0 3px}
"""

_PNG_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/]+={0,2}")
#: rows of a record table / items of a list shown before "... N more"
MAX_ROWS = 500
#: nesting shown before a value is printed as (cut) JSON
MAX_DEPTH = 6


class Safe(str):
    """A string of HTML made here from escaped parts: passed through unescaped. Adding a plain
    string to it escapes that string (``Safe + str`` and ``str + Safe`` stay Safe)."""

    def __add__(self, other: str) -> "Safe":
        return Safe(str.__add__(self, esc(other)))

    def __radd__(self, other: str) -> "Safe":
        return Safe(str.__add__(esc(other), self))


def esc(value: Any) -> Safe:
    """``value`` as HTML text (quotes escaped too, so it is safe in an attribute)."""
    return value if isinstance(value, Safe) else Safe(html.escape(str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))


def tag(name: str, body: Any = "", **attrs: Any) -> Safe:
    """``<name attrs>body</name>``; attribute values and a non-Safe body are escaped
    (``class_`` gives ``class``)."""
    attr = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Safe(f"<{name}{attr}>{esc(body)}</{name}>")


def badge(passed: bool | None, yes: str = "pass", no: str = "FAIL", big: bool = False) -> Safe:
    size = "badge big " if big else "badge "
    if passed is None:
        return tag("span", "n/a", class_=size + "note")
    return tag("span", yes if passed else no, class_=size + ("pass" if passed else "fail"))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def number(x: Any, key: str = "") -> Safe:
    """A figure as text: floats to 6 significant digits, byte counts also in KB/MB."""
    if isinstance(x, bool):
        return esc("true" if x else "false")
    if isinstance(x, int):
        text = f"{x:,}" if key.endswith("bytes") else str(x)
        return esc(text + (f" ({human_bytes(x)})" if key.endswith("bytes") and x >= 1024 else ""))
    if isinstance(x, float):
        return esc(f"{x:.6g}" if math.isfinite(x) else str(x))
    return esc(x)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def value(v: Any, key: str = "", depth: int = 0) -> Safe:
    """Any JSON value as HTML: objects as key/value tables, lists of objects as tables with a
    column per key, lists of scalars inline. What a later report block adds renders too."""
    if v is None:
        return tag("span", "–", class_="muted")
    if isinstance(v, bool):
        return badge(v, "true", "false") if key in ("passed", "ok", "met") else number(v)
    if isinstance(v, (int, float)):
        return number(v, key)
    if isinstance(v, str):
        return esc(v)
    if depth >= MAX_DEPTH:
        return tag("code", json.dumps(v, default=str)[:300])
    if isinstance(v, Mapping):
        if len(v) > 1 and all(isinstance(x, Mapping) and all(map(_is_scalar, x.values())) for x in v.values()):
            # an object of flat objects (NNAPI coverage per API level): one row per key
            return records([{"": k, **x} for k, x in v.items()], depth=depth + 1)
        return kv_table(v, depth + 1) if v else tag("span", "{}", class_="muted")
    if isinstance(v, (list, tuple)):
        if not v:
            return tag("span", "none", class_="muted")
        if all(isinstance(x, Mapping) for x in v):
            return records(v, depth=depth + 1)
        if all(_is_scalar(x) for x in v):
            shown = join((value(x, key, depth + 1) for x in v[:MAX_ROWS]), ", ")
            return Safe(shown + (f" … {len(v) - MAX_ROWS} more" if len(v) > MAX_ROWS else ""))
        return tag("ul", join(tag("li", value(x, key, depth + 1)) for x in v[:MAX_ROWS]))
    return esc(v)


def kv_table(d: Mapping[str, Any], depth: int = 0, skip: Sequence[str] = ()) -> Safe:
    """A two-column table: each key and its value (nested values as nested tables)."""
    rows = [tag("tr", tag("th", k) + tag("td", value(v, str(k), depth), class_=_num_class(v)))
            for k, v in d.items() if k not in skip]
    return tag("table", join(rows), class_="kv") if rows else Safe("")


def _num_class(v: Any) -> str | None:
    return "num" if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def records(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, depth: int = 0,
            highlight: Callable[[Mapping[str, Any]], bool] | None = None) -> Safe:
    """A table with one row per record and a column per key (``columns``, else every key seen in
    order); a failing row (``passed``/``ok`` false) is tinted, a ``highlight``-ed one marked."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    head = tag("tr", join(tag("th", c) for c in columns))
    body = []
    for r in rows[:MAX_ROWS]:
        cells = join(tag("td", value(r.get(c), c, depth), class_=_num_class(r.get(c))) for c in columns)
        bad = r.get("passed") is False or r.get("ok") is False
        body.append(tag("tr", cells, class_="pick" if highlight and highlight(r) else ("bad" if bad else None)))
    more = tag("p", f"… {len(rows) - MAX_ROWS} more rows", class_="muted") if len(rows) > MAX_ROWS else Safe("")
    return Safe(tag("table", head + join(body)) + more)


def figure(uri: str | None, caption: Any, problem: str | None = None) -> Safe:
    """A plot embedded as a data: URI, or the reason there is none."""
    if uri is None:
        return tag("p", tag("span", "no plot", class_="badge note") + " " + esc(problem or ""), class_="muted")
    if not _PNG_URI.fullmatch(uri):
        raise ValueError("plots are embedded as PNG data: URIs only")
    return tag("figure", Safe(f'<img alt="{esc(caption)}" src="{uri}">') + tag("figcaption", caption))


def page(title: str, body: Safe) -> str:
    """A complete, self-contained HTML document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{esc(CSP)}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{tag('title', title)}<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
