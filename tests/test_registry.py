"""Registries list what exists without importing it, refuse duplicates, and name the known."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edgeport.errors import ConfigError, UnknownNameError
from edgeport.exporters import EXPORTERS, get_exporter
from edgeport.validation.runtimes import RUNTIMES, runtime_for_path


def test_duplicates_are_refused_and_misses_list_the_known():
    with pytest.raises(ConfigError, match="already registered"):
        EXPORTERS.register("onnx", "somewhere:Else")
    with pytest.raises(ConfigError, match="already registered"):
        RUNTIMES.register("litert", "somewhere:Else")
    with pytest.raises(UnknownNameError, match="known: onnx, tflite, coreml, tfjs"):
        get_exporter("tensorrt")


def test_artifact_kinds_map_to_runtimes(tmp_path):
    assert runtime_for_path(tmp_path / "m.onnx") == "onnxruntime"
    assert runtime_for_path(tmp_path / "m.tflite") == "litert"
    assert runtime_for_path(tmp_path / "m.mlpackage") == "coreml-emulator"
    assert runtime_for_path(tmp_path / "tfjs" / "model.json") == "tfjs-node"


def test_import_and_cli_startup_stay_light():
    code = ("import sys, edgeport, edgeport.cli, edgeport.exporters, edgeport.validation.runtimes;"
            "heavy = [m for m in ('torch', 'tensorflow', 'coremltools', 'onnxruntime', 'onnx') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
