"""Ops of a .tflite read from its flatbuffer (no TensorFlow), and NNAPI delegate coverage.

The flatbuffer is parsed with ``ai_edge_litert.schema_py_generated`` (the TFLite schema's
generated Python reader). For a plan, every node is checked against the NNAPI delegate table at
the profile's ``device.min_api_level``: the ops that would fall back to the CPU, and the share of
ops and of estimated FLOPs NNAPI would take. Fallbacks never block an export: the app still runs,
only slower (``OpsReport(blocking=False)``).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import RuntimeLoadError
from ...targets.nnapi import NodeFacts, TensorFacts, load_table
from . import OpsReport

if TYPE_CHECKING:  # pragma: no cover
    from ...targets.profile import Plan

DEFAULT_API_LEVEL = 29
# ops that only move or re-view data: no arithmetic worth counting
_SHAPE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "PACK", "UNPACK", "CONCATENATION",
              "GATHER", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "SPLIT", "SPLIT_V", "DEQUANTIZE",
              "QUANTIZE", "CAST", "EMBEDDING_LOOKUP", "PAD", "PADV2", "TILE", "BROADCAST_TO"}


def read_nodes(path: Path) -> list[NodeFacts]:
    """Every operator node of every subgraph, with the tensor facts the NNAPI rules need."""
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError as exc:  # pragma: no cover - ai-edge-litert is a base requirement
        raise RuntimeLoadError(f"cannot read .tflite files: {exc}") from exc
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read {Path(path).name}: {exc.strerror}") from exc
    try:
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("no TFL3 file identifier")
        model = fb.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as exc:
        raise RuntimeLoadError(f"{Path(path).name} is not a readable .tflite flatbuffer: {exc}") from exc
    op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    act_names = {v: k for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}
    buffers = model.buffers or []

    def tensor(sg: Any, i: int) -> TensorFacts | None:
        if i < 0:
            return None
        t = sg.tensors[i]
        b = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        const = b is not None and ((b.data is not None and len(b.data) > 0) or (b.offset or 0) > 1)
        q = t.quantization
        scales = q.scale if q is not None and q.scale is not None else []
        zps = q.zeroPoint if q is not None and q.zeroPoint is not None else []
        shape = tuple(int(s) for s in t.shape) if t.shape is not None else ()
        return TensorFacts(type_names.get(t.type, str(t.type)), shape, const, len(scales),
                           float(scales[0]) if len(scales) else 0.0, int(zps[0]) if len(zps) else 0)

    nodes = []
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM:{(code.customCode or b'?').decode() if isinstance(code.customCode, bytes) else code.customCode}"
            opts = op.builtinOptions
            options: dict[str, Any] = {}
            if opts is not None:
                if hasattr(opts, "fusedActivationFunction"):
                    options["fused_activation"] = act_names.get(opts.fusedActivationFunction, "NONE")
                if getattr(opts, "keepNumDims", False):
                    options["keep_num_dims"] = True
                if hasattr(opts, "dilationWFactor"):
                    options["dilation"] = (int(opts.dilationWFactor or 1), int(opts.dilationHFactor or 1))
                if hasattr(opts, "adjX"):
                    options["adj"] = (bool(opts.adjX), bool(opts.adjY))
            ins = tuple(tensor(sg, int(i)) for i in (op.inputs if op.inputs is not None else []))
            outs = tuple(t for t in (tensor(sg, int(i)) for i in (op.outputs if op.outputs is not None else []))
                         if t is not None)
            nodes.append(NodeFacts(name, int(code.version or 1), ins, outs, options))
    return nodes


def estimate_flops(node: NodeFacts) -> float:
    """Multiply-adds x2 for conv / fully-connected / matmul; one op per output element otherwise."""
    out = node.outputs[0].shape if node.outputs else ()
    n_out = float(np.prod(out)) if out else 1.0
    w = node.inputs[1] if len(node.inputs) > 1 else None
    if node.op == "CONV_2D" and w is not None and len(w.shape) == 4:      # [O, kh, kw, I]
        return 2.0 * n_out * w.shape[1] * w.shape[2] * w.shape[3]
    if node.op == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:  # [1, kh, kw, O]
        return 2.0 * n_out * w.shape[1] * w.shape[2]
    if node.op == "TRANSPOSE_CONV" and len(node.inputs) > 2 and node.inputs[1] is not None \
            and node.inputs[2] is not None and len(node.inputs[1].shape) == 4:
        f, x = node.inputs[1].shape, node.inputs[2].shape
        return 2.0 * float(np.prod(x)) * f[0] * f[1] * f[2]
    if node.op == "FULLY_CONNECTED" and w is not None and len(w.shape) == 2:  # [units, in]
        return 2.0 * n_out * w.shape[1]
    if node.op == "BATCH_MATMUL" and node.inputs and node.inputs[0] is not None and node.inputs[0].shape:
        a = node.inputs[0].shape
        k = a[-2] if node.options.get("adj", (False, False))[0] and len(a) > 1 else a[-1]
        return 2.0 * n_out * k
    if node.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and node.inputs and node.inputs[0] is not None:
        x = node.inputs[0].shape
        return float(np.prod(x)) if x else n_out
    if node.op in _SHAPE_OPS:
        return 0.0
    return n_out


def nnapi_coverage(nodes: list[NodeFacts], level: int) -> dict[str, Any]:
    """Share of ops / FLOPs the NNAPI delegate takes at API ``level``, and the fallbacks."""
    table = load_table()
    flops = [estimate_flops(n) for n in nodes]
    total_flops = sum(flops) or 1.0
    delegated_ops, delegated_flops = 0, 0.0
    fallback: Counter[tuple[str, int, str]] = Counter()
    for node, f in zip(nodes, flops):
        reason = table.fallback_reason(node, level)
        if reason is None:
            delegated_ops += 1
            delegated_flops += f
        else:
            fallback[(node.op, node.version, reason)] += 1
    return {
        "min_api_level": level,
        "android": table.level_name(level),
        "ops_total": len(nodes),
        "ops_delegated": delegated_ops,
        "ops_delegated_share": round(delegated_ops / len(nodes), 4) if nodes else 1.0,
        "flops_total": int(sum(flops)),
        "flops_delegated_share": round(delegated_flops / total_flops, 4),
        "fallback": [{"op": op, "version": v, "count": c, "reason": r}
                     for (op, v, r), c in sorted(fallback.items())],
    }


def inspect(path: Path, plan: "Plan | None" = None) -> OpsReport:
    """Ops used by the .tflite; with a plan, the NNAPI fallbacks at its minimum API level."""
    nodes = read_nodes(path)
    used = list(dict.fromkeys(n.op for n in nodes))
    details: dict[str, Any] = {"op_counts": dict(Counter(n.op for n in nodes))}
    if plan is None:
        return OpsReport(used=used, details=details)
    level = plan.device.min_api_level or DEFAULT_API_LEVEL
    cov = nnapi_coverage(nodes, level)
    table = load_table()
    # one line per level so a reader sees what raising minSdkVersion would buy
    cov["by_level"] = {str(lv): {k: nnapi_coverage(nodes, lv)[k] for k in ("ops_delegated_share", "flops_delegated_share")}
                       for lv in range(table.min_level, table.max_level + 1)}
    cov["source"] = ("edgeport table from the TFLite NNAPI delegate's per-op validation "
                     "(nnapi_delegate.cc) and NeuralNetworksTypes.h; static check, no device")
    details["nnapi"] = cov
    unsupported = list(dict.fromkeys(f["op"] for f in cov["fallback"]))
    return OpsReport(used=used, unsupported=unsupported, blocking=False, details=details)
