"""Quiet by default: what converters print goes to each target's log file beside its bundle, from
the Python API and from the CLI alike; the terminal gets edgeport's own lines only. Each test is a
fresh process, its stderr captured at the file-descriptor level (where TensorFlow's C++ writes)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from cli_helpers import ROOT, run_cli

API_SCRIPT = textwrap.dedent("""
    import logging, os, sys
    import edgeport

    user = logging.getLogger("coremltools")
    before = (sys.stdout, sys.stderr, list(logging.getLogger().handlers), user.propagate, list(user.handlers))
    results = edgeport.export("tests/data/failing_models.py:tiny_mlp", ["ios-coreml", "android-tflite"],
                              precision="fp16", out_dir=sys.argv[1])
    after = (sys.stdout, sys.stderr, list(logging.getLogger().handlers), user.propagate, list(user.handlers))
    assert before == after, (before, after)  # the caller's streams and logging setup, as they were
    for r in results:
        assert r.passed and r.log.is_file(), (r.target, r.error)
    os.write(2, b"fd 2 is the caller's again\\n")
""")


def test_the_python_api_prints_nothing_and_keeps_the_converters_output_in_logs(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", API_SCRIPT, str(out)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "fd 2 is the caller's again\n" and proc.stdout == ""
    coreml = (out / "tiny_mlp-ios-coreml.log").read_text()
    tflite = (out / "tiny_mlp-android-tflite.log").read_text()
    # coremltools' version notices and tqdm bars, TensorFlow's C++ lines, onnx2tf's SavedModel
    # message, LiteRT's delegate line: all kept, each between edgeport's step lines
    assert "has not been tested with coremltools" in coreml and "Converting PyTorch Frontend ==> MIL Ops" in coreml
    assert "[edgeport] torch→CoreML (FLOAT16, iOS16) ..." in coreml
    assert "Saved artifact at" in tflite and "Created TensorFlow Lite XNNPACK delegate" in tflite
    assert "[edgeport] ONNX→SavedModel (onnx2tf) ..." in tflite
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "tiny_mlp-android-tflite",
                                                     "tiny_mlp-android-tflite.log", "tiny_mlp-ios-coreml",
                                                     "tiny_mlp-ios-coreml.log"]


def test_the_cli_on_all_targets_shows_only_edgeport_lines(tmp_path):
    """Every target at its default precision (int8 calibration on ONNX and TFLite included); the
    verdicts do not matter here (random weights, random data), only what reaches the terminal."""
    import numpy as np

    data = tmp_path / "data.npz"
    np.savez(data, x=np.random.default_rng(2).standard_normal((24, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    proc = run_cli("export", "tests/data/failing_models.py:tiny_cnn", "--target", "all", "--data", str(data),
                   "-o", str(out))
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # every target produced
    lines = proc.stderr.splitlines()
    assert lines and [ln for ln in lines if not ln.startswith("[edgeport] ")] == [], proc.stderr
    targets = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")
    assert [ln for ln in lines if ln.startswith("[edgeport] == ")] == [
        f"[edgeport] == tiny_cnn -> {t} ({f}, {p})" for t, f, p in
        zip(targets, ("onnx", "tflite", "coreml", "tfjs"), ("int8", "int8", "fp16", "fp16"))]
    assert "targets passed in" in proc.stdout
    logs = {t: (out / f"tiny_cnn-{t}.log").read_text() for t in targets}
    # what used to reach the terminal: TensorFlow's and coremltools' notices, LiteRT's delegate line
    assert "Saved artifact at" in logs["android-tflite"] and "Created TensorFlow Lite XNNPACK" in logs["android-tflite"]
    assert "has not been tested with coremltools" in logs["ios-coreml"]
    assert all(f"[edgeport] == tiny_cnn -> {t}" in logs[t] for t in targets)
