"""Profiles are strict data; the plan refuses what a target cannot do."""
from __future__ import annotations

import pytest

from edgeport.compression.request import CompressionRequest as Ask
from edgeport.errors import ConfigError, UnknownNameError
from edgeport.targets.profile import builtin_profiles, load_profile, parse_profile, resolve_plan
from edgeport.targets.tolerances import TOLERANCES


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
    plan = resolve_plan(p, "fp16", Ask(sparsity=0.25, pruning_scope="global"))
    (step,) = plan.compression
    assert (plan.precision, plan.sparsity, step.kind, step.scope) == ("fp16", 0.25, "magnitude", "global")
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


def test_compression_tables_and_the_sparsity_shorthand_are_one_step(tmp_path):
    base = ('name = "mine"\nformat = "onnx"\nprecisions = ["fp32"]\ndefault_precision = "fp32"\n')
    f = tmp_path / "a.toml"
    f.write_text(base + '[[compression]]\nkind = "magnitude"\nsparsity = 0.3\nscope = "global"\n')
    (step,) = load_profile(str(f)).compression
    assert (step.sparsity, step.scope, step.recalibrate_batchnorm) == (0.3, "global", True)
    f.write_text('sparsity = 0.3\npruning_scope = "global"\n' + base)
    assert load_profile(str(f)).compression == (step,)
    # the CLI's --sparsity replaces the profile's step; 0 removes it
    assert resolve_plan(load_profile(str(f)), compression=Ask(sparsity=0.0)).compression == ()
    f.write_text(base + '[[compression]]\nkind = "magnitud"\n')
    with pytest.raises(UnknownNameError, match="unknown compression step 'magnitud'; known: .*magnitude"):
        load_profile(str(f))
    f.write_text(base + '[[compression]]\nkind = "magnitude"\nsparsity = 1.5\n')
    with pytest.raises(ConfigError, match="sparsity must be <= 0.99"):
        load_profile(str(f))


@pytest.mark.parametrize("extra, needle", [
    ('[options]\nopset = 999\n', "opset must be <= 23"),
    ('[options]\nquant_preprocess = "no"\n', "quant_preprocess must be true or false"),
    ('[latency]\nthreads = -1\n', "threads must be >= 1"),
    ('[budgets]\nmax_p50_ms = -1\n', "max_p50_ms must be >= 0.0"),
    ('[tolerances.int8]\naccuracy_drop_max = 0.5\n', "a fraction: 0.01 = 1 point"),
    ('[device]\nmin_api_level = "29"\n', "min_api_level must be an integer"),
    ('extra_runtimes = ["litert"]\n', "extra_runtimes 'litert' is not a runtime of the onnx format"),
])
def test_profiles_are_checked_completely_at_load(tmp_path, extra, needle):
    f = tmp_path / "p.toml"
    body = ('name = "mine"\nformat = "onnx"\nruntime = "onnxruntime"\nprecisions = ["fp32", "int8"]\n'
            'default_precision = "int8"\n')
    # a [table] goes after the top-level keys, a top-level key before the tables
    f.write_text(body + extra if extra.startswith("[") else extra + body)
    with pytest.raises(ConfigError, match=needle.replace("(", "\\(").replace(")", "\\)")):
        load_profile(str(f))


def test_a_bundle_plan_round_trips_and_a_malformed_one_is_named():
    from edgeport.errors import ModelLoadError
    from edgeport.targets.profile import Plan

    plan = resolve_plan(load_profile("android-tflite"), "int8", Ask(sparsity=0.5, prune_channels=0.25, recover="kd"))
    assert Plan.from_dict(plan.to_dict()) == plan
    bad = plan.to_dict()
    bad["tolerance"]["cosine_min"] = "0.1"
    with pytest.raises(ModelLoadError, match="plan is malformed.*cosine_min must be a finite number"):
        Plan.from_dict(bad)


def test_compression_flags_merge_into_the_profile_in_one_order(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('name = "mine"\nformat = "onnx"\nprecisions = ["fp32"]\ndefault_precision = "fp32"\n'
                 'channel_multiple = 16\n[[compression]]\nkind = "distill"\ntemperature = 2.0\n'
                 '[[compression]]\nkind = "magnitude"\nsparsity = 0.3\n')
    profile = load_profile(str(f))
    assert profile.channel_multiple == 16 and [s.kind for s in profile.compression] == ["distill", "magnitude"]
    plan = resolve_plan(profile, compression=Ask(prune_channels=0.5, recover_time=30.0))
    # recovery last, the profile's distill settings kept, the flag's time applied
    assert [s.kind for s in plan.compression] == ["channels", "magnitude", "distill"]
    distill = plan.compression[-1]
    assert (distill.temperature, distill.time_s, distill.method) == (2.0, 30.0, "kd")
    assert plan.channel_multiple == 16
    assert [s.kind for s in resolve_plan(profile, compression=Ask(recover="none", sparsity=0)).compression] == []
    with pytest.raises(ConfigError, match="gradual magnitude pruning runs inside recovery"):
        resolve_plan(load_profile("local-onnx"), compression=Ask(sparsity=0.5, pruning_schedule="gradual"))
    with pytest.raises(ConfigError, match="nothing to recover from"):
        resolve_plan(load_profile("local-onnx"), compression=Ask(recover="kd"))
    f.write_text('name = "mine"\nformat = "onnx"\nprecisions = ["fp32"]\ndefault_precision = "fp32"\n'
                 'channel_multiple = 0\n')
    with pytest.raises(ConfigError, match="channel_multiple 0 must be between 1 and 256"):
        load_profile(str(f))
