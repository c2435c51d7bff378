"""NNAPI delegate coverage: which TFLite ops the NNAPI delegate takes at an Android API level.

The rules are data (``delegate_ops.toml``, read strictly); this module only applies them to the
facts of one op node, so the inspector needs no Android device and no TensorFlow.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ...errors import ConfigError

_OP_KEYS = {"since", "max_version", "types", "type_input", "input_types", "output_types", "const_inputs",
            "max_rank", "requires_bias", "hybrid_since", "per_channel_since", "dilation_since",
            "keep_num_dims_since", "int32_no_activation", "nonscalar_output", "same_quant_in_out",
            "symmetric_int8_at", "float16_const", "float16_nonconst_since"}


@dataclass(frozen=True)
class TensorFacts:
    """What the rules look at for one tensor of a node."""

    dtype: str                      # "float32", "int8", ...
    shape: tuple[int, ...]
    is_const: bool = False
    scales: int = 0                 # number of quantization scales (>1: per-channel)
    scale: float = 0.0              # the first scale
    zero_point: int = 0


@dataclass(frozen=True)
class NodeFacts:
    """One operator node of a .tflite subgraph, as the delegate's validation sees it."""

    op: str                         # builtin name, e.g. "CONV_2D"
    version: int
    inputs: tuple[TensorFacts | None, ...]   # None: an omitted optional input
    outputs: tuple[TensorFacts, ...]
    options: dict[str, Any] = field(default_factory=dict)  # fused_activation, keep_num_dims, dilation


@dataclass(frozen=True)
class NnapiTable:
    min_level: int
    max_level: int
    level_names: dict[int, str]
    ops: dict[str, dict[str, Any]]

    def level_name(self, level: int) -> str:
        return self.level_names.get(level, f"API {level}")

    def fallback_reason(self, node: NodeFacts, level: int) -> str | None:
        """Why the delegate would leave ``node`` on the CPU at API ``level``; None if it takes it."""
        if level < self.min_level:
            return f"NNAPI does not exist before API {self.min_level}"
        rule = self.ops.get(node.op)
        if rule is None:
            return "not mapped by the TFLite NNAPI delegate at any API level"
        if level < rule["since"]:
            return f"mapped only from API {rule['since']} ({self.level_name(rule['since'])})"
        first = node.inputs[0] if node.inputs else None
        if rule.get("float16_const") and first is not None and first.dtype == "float16":
            # fp16 weights: the delegate converts constant fp16 tensors itself, whatever the version
            if first.is_const:
                return None
            since = rule.get("float16_nonconst_since", 0)
            return None if level >= since else f"float16 activations need API {since}"
        if "max_version" in rule and node.version > rule["max_version"]:
            return f"op version {node.version} > {rule['max_version']}, the highest the delegate accepts"
        return _check_rule(rule, node, level)


def _at_level(table: dict[str, Any] | None, level: int) -> Any:
    """The value of a {level: value} table that applies at ``level`` (highest key <= level)."""
    if not table:
        return None
    keys = sorted(int(k) for k in table if int(k) <= level)
    return table[str(keys[-1])] if keys else None


def _check_rule(rule: dict[str, Any], node: NodeFacts, level: int) -> str | None:
    ins = node.inputs
    first = ins[0] if ins else None
    opts = node.options
    idx = int(rule.get("type_input", 0))
    checked = ins[idx] if idx < len(ins) else None
    allowed = _at_level(rule.get("types"), level)
    if allowed is not None and checked is not None and checked.dtype not in allowed:
        return f"input {idx} type {checked.dtype} not in {allowed} at API {level}"
    for i, types in (rule.get("input_types") or {}).items():
        t = ins[int(i)] if int(i) < len(ins) else None
        if t is not None and t.dtype not in types:
            return f"input {i} type {t.dtype} not in {types}"
    out_allowed = _at_level(rule.get("output_types"), level)
    if out_allowed is not None and node.outputs and node.outputs[0].dtype not in out_allowed:
        return f"output type {node.outputs[0].dtype} not in {out_allowed} at API {level}"
    for i in rule.get("const_inputs", []):
        t = ins[i] if i < len(ins) else None
        if t is not None and not t.is_const:
            return f"input {i} must be a constant tensor"
    if "max_rank" in rule and first is not None and len(first.shape) > rule["max_rank"]:
        return f"rank {len(first.shape)} > {rule['max_rank']}"
    if rule.get("requires_bias") and (len(ins) < 3 or ins[2] is None):
        return "no bias input (the delegate requires one)"
    weights = ins[1] if len(ins) > 1 else None
    is_hybrid = (first is not None and weights is not None and first.dtype == "float32"
                 and weights.dtype in ("int8", "uint8"))
    if is_hybrid:
        since = rule.get("hybrid_since", 0)
        if not since:
            return "hybrid (float input, int8 weights) not supported"
        if level < since:
            return f"hybrid (dynamic-range int8) ops need API {since}"
    if weights is not None and weights.scales > 1 and rule.get("per_channel_since", 0) > level:
        return f"per-channel quantized weights need API {rule['per_channel_since']}"
    if rule.get("dilation_since", 0) > level and opts.get("dilation", (1, 1)) != (1, 1):
        return f"dilation needs API {rule['dilation_since']}"
    if rule.get("keep_num_dims_since", 0) > level and opts.get("keep_num_dims"):
        return f"keep_num_dims needs API {rule['keep_num_dims_since']}"
    if rule.get("int32_no_activation") and first is not None and first.dtype == "int32" \
            and opts.get("fused_activation", "NONE") != "NONE":
        return "int32 arithmetic with a fused activation"
    if rule.get("nonscalar_output") and node.outputs and len(node.outputs[0].shape) == 0:
        return "scalar output"
    if rule.get("same_quant_in_out") and first is not None and first.dtype in ("int8", "uint8") \
            and node.outputs and (first.zero_point != node.outputs[0].zero_point or
                                  abs(first.scale - node.outputs[0].scale) > 1e-12):
        return "quantized input and output must share scale and zero point"
    if level in rule.get("symmetric_int8_at", []) and first is not None and first.dtype == "int8" \
            and first.zero_point != 0:
        return f"int8 input with zero point {first.zero_point} (API {level} takes symmetric int8 only)"
    return None


@lru_cache(maxsize=1)
def load_table() -> NnapiTable:
    """Read and validate ``delegate_ops.toml`` shipped in this package."""
    text = resources.files(__name__).joinpath("delegate_ops.toml").read_text()
    data = tomllib.loads(text)
    levels = data.get("levels", {})
    ops = data.get("ops", {})
    for name, rule in ops.items():
        unknown = sorted(set(rule) - _OP_KEYS)
        if unknown:
            raise ConfigError(f"nnapi table: op {name} has unknown key {unknown[0]!r}; "
                              f"known: {', '.join(sorted(_OP_KEYS))}")
        if "since" not in rule:
            raise ConfigError(f"nnapi table: op {name} lacks 'since'")
    return NnapiTable(min_level=int(levels.get("min", 27)), max_level=int(levels.get("max", 34)),
                      level_names={int(k): v for k, v in levels.get("names", {}).items()}, ops=ops)


__all__ = ["NnapiTable", "NodeFacts", "TensorFacts", "load_table"]
