"""The NNAPI delegate table and the coverage it gives real .tflite files at each API level."""
from __future__ import annotations

from dataclasses import replace

import pytest

from edgeport.exporters import get_exporter
from edgeport.exporters.base import ExportJob
from edgeport.progress import SILENT
from edgeport.targets.nnapi import NodeFacts, TensorFacts, load_table
from edgeport.targets.profile import load_profile, resolve_plan
from edgeport.validation.inspect import inspect_artifact


def node(op, version=1, inputs=(), outputs=(), **options):
    return NodeFacts(op, version, tuple(inputs), tuple(outputs), options)


F = TensorFacts("float32", (1, 8, 8, 16))
I8 = TensorFacts("int8", (1, 8, 8, 16), scales=1, scale=0.1, zero_point=-3)


def test_table_names_real_tflite_ops():
    from ai_edge_litert import schema_py_generated as fb

    table = load_table()
    builtin = {k for k in vars(fb.BuiltinOperator) if not k.startswith("_")}
    assert set(table.ops) <= builtin
    assert table.min_level == 27 and table.max_level == 34 and len(table.ops) > 60


def test_rules_follow_the_api_level():
    t = load_table()
    ids = TensorFacts("int32", (1, 8))
    gather = node("GATHER", 1, [TensorFacts("float32", (100, 16), is_const=True), ids], [F])
    assert "API 29" in t.fallback_reason(gather, 28)
    assert t.fallback_reason(gather, 29) is None
    assert "not mapped" in t.fallback_reason(node("BATCH_MATMUL", 1, [F, F], [F]), 34)
    w_pc = TensorFacts("int8", (16, 3, 3, 16), is_const=True, scales=16, scale=0.01)
    bias = TensorFacts("int32", (16,), is_const=True)
    conv = node("CONV_2D", 3, [I8, w_pc, bias], [I8], dilation=(1, 1))
    assert t.fallback_reason(conv, 28) is not None
    assert t.fallback_reason(conv, 29) is None
    assert "bias" in t.fallback_reason(node("CONV_2D", 1, [F, TensorFacts("float32", (16, 3, 3, 16), True)], [F]), 30)
    quant = node("QUANTIZE", 1, [F], [I8])
    assert "output type int8" in t.fallback_reason(quant, 29) and t.fallback_reason(quant, 30) is None
    fp16_w = node("DEQUANTIZE", 3, [TensorFacts("float16", (16,), is_const=True)], [F])
    assert t.fallback_reason(fp16_w, 27) is None  # fp16 weights are converted by the delegate
    assert "version 9" in t.fallback_reason(node("ADD", 9, [F, F], [F]), 30)


@pytest.fixture(scope="module")
def digits_int8(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("nnapi")
    plan = resolve_plan(load_profile("android-tflite"), precision="int8")
    job = ExportJob(source=digits, module=digits.module, plan=plan, calibration=digits.calibration_data,
                    progress=SILENT, workdir=root / "w")
    return plan, get_exporter("tflite").export(job, root / "a").path


def _at(plan, level):
    return replace(plan, device=replace(plan.device, min_api_level=level))


def test_older_api_levels_show_more_fallbacks(digits_int8):
    plan, path = digits_int8
    reports = {lv: inspect_artifact("tflite", path, _at(plan, lv)) for lv in (27, 29, 30)}
    shares = {lv: r.details["nnapi"]["ops_delegated_share"] for lv, r in reports.items()}
    assert shares[27] < shares[29] < shares[30] == 1.0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(reports[27].unsupported)
    assert set(reports[29].unsupported) == {"QUANTIZE", "DEQUANTIZE"}  # int8 I/O conversion needs API 30
    assert not reports[30].unsupported
    # conv/fc carry the arithmetic: at 27 almost none of it is delegated, at 29 all of it
    assert reports[27].details["nnapi"]["flops_delegated_share"] < 0.01
    assert reports[29].details["nnapi"]["flops_delegated_share"] == 1.0
    for r in reports.values():
        assert r.blocking is False
        assert all({"op", "version", "reason"} <= set(f) for f in r.details["nnapi"]["fallback"])


def test_profile_level_is_used_and_every_level_is_listed(digits_int8):
    plan, path = digits_int8
    rep = inspect_artifact("tflite", path, plan)
    nn = rep.details["nnapi"]
    assert nn["min_api_level"] == plan.device.min_api_level == 29
    assert list(nn["by_level"]) == [str(lv) for lv in range(27, 35)]
    assert nn["flops_total"] > 3_000_000  # 3 convs + 2 fc on 8x8 inputs
