"""A TF.js graph model's inputs and outputs, read from its checked model.json: the keys TF.js is
fed and asked with, and the user-facing names edgeport recorded in its metadata."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...data import TensorSpec
from ...errors import RuntimeLoadError
from .tfjs_model import MAX_DIM, Malformed, is_int, read_model_json, want

#: the userDefinedMetadata key edgeport's TF.js exporter records the source's names under
METADATA_KEY = "edgeport"

_DT = {"DT_FLOAT": "float32", "DT_HALF": "float32", "DT_DOUBLE": "float32", "DT_INT32": "int32",
       "DT_INT64": "int64", "DT_INT16": "int32", "DT_INT8": "int32", "DT_UINT8": "int32", "DT_BOOL": "bool"}
# TF.js tensors are float32, int32 or bool: int64 token ids are served as int32


@dataclass(frozen=True)
class GraphIO:
    """A graph model's inputs and outputs: user-facing names, the keys TF.js is fed/asked with."""

    inputs: tuple[TensorSpec, ...]   # dtype as the graph declares it (int64 ids stay int64)
    input_keys: tuple[str, ...]
    output_names: tuple[str, ...]
    output_keys: tuple[str, ...]


def _dims(shape: Any, where: str) -> tuple[int, ...]:
    if shape is None:
        return ()
    want(shape, dict, where)
    if shape.get("unknownRank"):
        return ()
    dims = []
    for d in want(shape.get("dim", []), list, f"{where}.dim"):
        size = want(d, dict, f"{where}.dim[]").get("size", -1)
        if isinstance(size, str) and re.fullmatch(r"-?[0-9]{1,12}", size.strip()):
            size = int(size)
        if not is_int(size) or not -1 <= size <= MAX_DIM:
            raise Malformed(f"{where} holds a dimension {str(size)[:20]!r}")
        dims.append(size)
    return tuple(dims)


def _dtype(tf_dtype: Any) -> str:
    return _DT.get(tf_dtype, "float32") if isinstance(tf_dtype, str) or tf_dtype is None else "float32"


def read_graph_io(model_json: Path, doc: dict[str, Any] | None = None) -> GraphIO:
    """Inputs/outputs from model.json (``doc`` if already read): its signature, renamed by
    edgeport's metadata if present; graphs without a signature fall back to their Placeholder nodes
    and unconsumed nodes."""
    if doc is None:
        doc = read_model_json(model_json)
    try:
        return _graph_io(doc)
    except Malformed as exc:
        raise RuntimeLoadError(f"{Path(model_json).name} is not a TF.js graph model.json: {exc}") from None


def _graph_io(doc: dict[str, Any]) -> GraphIO:
    nodes = doc["modelTopology"]["node"]
    sig = doc.get("signature") or {}
    in_items: list[tuple[str, str, tuple[int, ...]]] = []
    if sig.get("inputs"):
        for k, v in want(sig["inputs"], dict, "signature.inputs").items():
            want(v, dict, f"signature.inputs[{k[:40]!r}]")
            in_items.append((k, _dtype(v.get("dtype")), _dims(v.get("tensorShape"), f"signature.inputs[{k[:40]!r}]")))
    else:
        for n in nodes:
            if n.get("op") == "Placeholder":
                attr = n.get("attr") or {}
                dt = attr.get("dtype") if isinstance(attr.get("dtype"), dict) else {}
                shp = attr.get("shape") if isinstance(attr.get("shape"), dict) else {}
                in_items.append((n["name"], _dtype(dt.get("type")), _dims(shp.get("shape"), f"node {n['name'][:40]!r}")))
    if sig.get("outputs"):
        out_keys = list(want(sig["outputs"], dict, "signature.outputs"))
    else:
        consumed = {i.split(":")[0].lstrip("^") for n in nodes for i in n.get("input", [])}
        out_keys = [n["name"] for n in nodes if n["name"] not in consumed
                    and n.get("op") not in ("Const", "NoOp", "Placeholder")]
    meta = want((doc.get("userDefinedMetadata") or {}).get(METADATA_KEY) or {}, dict, "userDefinedMetadata.edgeport")
    names: dict[str, dict[str, str]] = {}
    for side in ("inputs", "outputs"):
        names[side] = {}
        for i, m in enumerate(want(meta.get(side, []), list, f"userDefinedMetadata.edgeport.{side}")):
            want(m, dict, f"userDefinedMetadata.edgeport.{side}[{i}]")
            names[side][want(m.get("key"), str, f"edgeport.{side}[{i}].key")] = \
                want(m.get("name"), str, f"edgeport.{side}[{i}].name")
    if names["outputs"]:  # edgeport recorded the source order
        order = [k for k in names["outputs"] if k in out_keys]
        out_keys = order + [k for k in out_keys if k not in order]
    specs = tuple(TensorSpec(names["inputs"].get(k, k), shape, dt) for k, dt, shape in in_items)
    return GraphIO(specs, tuple(k for k, _, _ in in_items),
                   tuple(names["outputs"].get(k, k) for k in out_keys), tuple(out_keys))
