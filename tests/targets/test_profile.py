"""Profiles are strict data; the plan refuses what a target cannot do."""
from __future__ import annotations

import pytest

from edgeport.errors import ConfigError, UnknownNameError
from edgeport.targets.profile import builtin_profiles, load_profile, parse_profile, resolve_plan
from edgeport.validation.tolerances import TOLERANCES


def test_builtin_profiles_are_complete():
    profiles = builtin_profiles()
    assert set(profiles) == {"local-onnx", "android-tflite", "ios-coreml", "browser-tfjs"}
    for p in profiles.values():
        assert p.default_precision in p.precisions and 0 <= p.sparsity < 1
    assert "bf16" not in profiles["ios-coreml"].precisions and "lut4" in profiles["ios-coreml"].precisions


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'thread'.*known keys: runs, threads, warmup"):
        parse_profile({"name": "x", "format": "onnx", "runtime": "onnxruntime", "precisions": ["fp32"],
                       "default_precision": "fp32", "latency": {"thread": 2}}, "test")
    with pytest.raises(ConfigError, match="unknown key 'precison'"):
        parse_profile({"name": "x", "format": "onnx", "runtime": "onnxruntime", "precisions": ["fp32"],
                       "default_precision": "fp32", "precison": "fp16"}, "test")


def test_overrides_within_the_target():
    p = load_profile("local-onnx")
    plan = resolve_plan(p, "fp16", 0.25, "global")
    assert (plan.precision, plan.sparsity, plan.pruning_scope) == ("fp16", 0.25, "global")
    assert plan.tolerance == TOLERANCES["fp16"]
    with pytest.raises(ConfigError, match="does not support precision 'bf16'; supported: fp32, fp16, int8"):
        resolve_plan(load_profile("ios-coreml"), "bf16")
    with pytest.raises(UnknownNameError, match="unknown precision 'int4'"):
        resolve_plan(p, "int4")


def test_profile_tolerance_override(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('name = "mine"\nformat = "onnx"\nruntime = "onnxruntime"\nprecisions = ["fp32", "int8"]\n'
                 'default_precision = "int8"\n[tolerances.int8]\ncosine_min = 0.999\n')
    plan = resolve_plan(load_profile(str(f)))
    assert plan.tolerance.cosine_min == 0.999
    assert plan.tolerance.top1_agreement_min == TOLERANCES["int8"].top1_agreement_min
