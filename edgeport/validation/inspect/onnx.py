"""Ops of an ONNX file (op types by domain)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from . import OpsReport


def inspect(path: Path, plan: Any = None) -> OpsReport:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = Counter((n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type
                     for n in model.graph.node)
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return OpsReport(used=sorted(counts), details={"counts": dict(sorted(counts.items())),
                                                   "opsets": opsets, "nodes": sum(counts.values())})
