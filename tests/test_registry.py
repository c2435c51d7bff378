"""Formats are declared once and refuse duplicates; lookups name the known; startup stays light."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import edgeport
from edgeport.errors import ConfigError, UnknownNameError
from edgeport.exporters import get_exporter
from edgeport.formats import Format, Layout, get_format, register_format
from edgeport.precision import Precision
from edgeport.validation.runtimes import get_runtime, runtime_for_path


def test_duplicates_are_refused_and_misses_list_the_known():
    onnx = get_format("onnx")
    with pytest.raises(ConfigError, match="a format named 'onnx' is already registered"):
        register_format(onnx)
    with pytest.raises(ConfigError, match="a runtime named 'litert' is already registered"):
        register_format(Format("other", "m.x", (".x",), Layout.FILE, "a:B", (("litert", "a:C"),), (Precision.FP32,)))
    with pytest.raises(UnknownNameError, match="known: onnx, tflite, coreml, tfjs"):
        get_exporter("tensorrt")
    with pytest.raises(UnknownNameError, match="unknown runtime 'ort'"):
        get_runtime("ort")
    with pytest.raises(UnknownNameError, match="unknown precision 'int4'; known: fp32, fp16, bf16"):
        Precision.parse("int4")


def test_artifact_kinds_map_to_runtimes(tmp_path):
    assert runtime_for_path(tmp_path / "m.onnx") == "onnxruntime"
    assert runtime_for_path(tmp_path / "m.tflite") == "litert"
    assert runtime_for_path(tmp_path / "m.mlpackage") == "coreml-emulator"
    assert runtime_for_path(tmp_path / "tfjs" / "model.json") == "tfjs-node"
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "model.json").write_text("{}")
    assert runtime_for_path(tmp_path / "web") == "tfjs-node"


def test_layouts_list_the_artifact_files(tmp_path):
    (tmp_path / "tfjs").mkdir()
    for name in ("tfjs/model.json", "tfjs/group1-shard1of1.bin", "report.json"):
        (tmp_path / name).write_text("x")
    assert get_format("tfjs").files(tmp_path, "tfjs/model.json") == ["tfjs/group1-shard1of1.bin", "tfjs/model.json"]
    assert get_format("onnx").files(tmp_path, "report.json") == ["report.json"]


def test_public_api_has_real_signatures():
    params = inspect.signature(edgeport.export).parameters
    assert list(params)[:2] == ["model", "targets"] and "precision" in params and "out_dir" in params
    assert "bundle" in inspect.signature(edgeport.validate).parameters
    assert edgeport.ModelSource.__name__ == "ModelSource" and edgeport.Report.__name__ == "Report"
    assert issubclass(edgeport.ConfigError, edgeport.EdgeportError)


def test_import_and_cli_startup_stay_light():
    code = ("import sys, edgeport, edgeport.cli, edgeport.formats, edgeport.exporters, edgeport.validation.runtimes,"
            " edgeport.targets.profile; edgeport.targets.profile.builtin_profiles();"
            "heavy = [m for m in ('torch', 'tensorflow', 'coremltools', 'onnxruntime', 'onnx') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_targets_lists_the_emulator_ops(capsys):
    import json

    from edgeport.cli import main

    assert main(["targets", "--ops", "ios-coreml", "--json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert {"conv", "conv_transpose", "lstm", "gru", "while_loop", "upsample_bilinear", "const"} <= set(ops)
    assert ops == sorted(ops)
    assert main(["targets", "--ops", "local-onnx"]) == 2  # a real runtime runs what its format defines
