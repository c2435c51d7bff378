"""Ops of a TF.js graph model checked against the TF.js supported-op list.

The list is the one the installed ``tensorflowjs`` package ships (``tensorflowjs/op_list/*.json``,
the converter's own pre-flight data, versioned with it), read as plain JSON: no TensorFlow
import. An op outside it cannot run in TF.js, so it is reported by name and blocks the export.
Decision-forest ops (``tfdf.json``) are left out: they need the separate tfjs-tfdf package,
which pages (and edgeport's runners) do not load.

model.json is untrusted data: it is read and its weight paths confined by the TF.js runtime's own
checks (bounded size, well-formed manifest, shards inside the model folder), so a malformed one is
a :class:`RuntimeLoadError`, never a parser's exception.
"""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtimes.tfjs_model import check_weight_files, find_model_json, read_model_json
from . import OpsReport

if TYPE_CHECKING:  # pragma: no cover
    from ...targets.profile import Plan

# debug ops the converter strips (strip_debug_ops) and graph plumbing TF.js resolves itself
_ALWAYS_OK = frozenset({"Assert", "CheckNumerics", "Print"})
_SKIPPED_LISTS = frozenset({"tfdf.json"})


@lru_cache(maxsize=1)
def supported_ops() -> tuple[frozenset[str], str]:
    """(op names TF.js runs, where the list came from)."""
    import importlib.util

    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None or not spec.submodule_search_locations:
        return frozenset(), "tensorflowjs not installed: no op list"
    root = Path(list(spec.submodule_search_locations)[0]) / "op_list"
    names: set[str] = set()
    for f in sorted(root.glob("*.json")):
        if f.name in _SKIPPED_LISTS:
            continue
        names.update(op["tfOpName"] for op in json.loads(f.read_text()))
    try:
        from importlib.metadata import version

        ver = version("tensorflowjs")
    except Exception:  # metadata is informative only
        ver = "unknown"
    return frozenset(names), f"tensorflowjs {ver} op_list ({len(names)} ops)"


def _graph_ops(doc: dict[str, Any]) -> list[str]:
    topo = doc["modelTopology"]
    nodes = list(topo["node"])
    for fn in (topo.get("library") or {}).get("function", []):  # control-flow bodies
        nodes.extend(fn.get("nodeDef", []))
    return [n.get("op", "") for n in nodes]


def download_sizes(model_json: Path, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.json + the shards it names: raw bytes and gzip bytes (each file compressed alone,
    as a web server sends it). Shards are confined to the model folder; missing ones are listed."""
    if doc is None:
        doc = read_model_json(model_json)
    shards, missing = check_weight_files(model_json, doc, allow_missing=True)
    files = [Path(model_json)] + [s.path for s in shards]
    return {
        "download_bytes": sum(f.stat().st_size for f in files),
        "download_gzip_bytes": sum(len(gzip.compress(f.read_bytes(), 9, mtime=0)) for f in files),
        "download_files": len(files),
        "missing_files": missing,
    }


def inspect(path: Path, plan: "Plan | None" = None) -> OpsReport:
    """Ops of the model.json at ``path`` (or in that folder); unsupported ones are blocking."""
    model_json = find_model_json(Path(path))
    doc = read_model_json(model_json)
    used = _graph_ops(doc)
    known, source = supported_ops()
    details: dict[str, Any] = {"op_list": source, **download_sizes(model_json, doc)}
    if not known:  # cannot judge: say so rather than pass or fail silently
        details["note"] = "TF.js op list unavailable; ops not checked"
        return OpsReport(used=sorted(set(used)), details=details)
    unsupported = sorted({op for op in used if op not in known and op not in _ALWAYS_OK})
    if unsupported:
        details["reason"] = f"TF.js cannot run: {', '.join(unsupported)}"
    if details["missing_files"]:
        details["reason"] = (details.get("reason", "") + "; " if unsupported else "") + \
            f"missing weight files: {', '.join(details['missing_files'])}"
    return OpsReport(used=sorted(set(used)), unsupported=unsupported,
                     blocking=bool(unsupported or details["missing_files"]), details=details)
