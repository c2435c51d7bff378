"""edgeport sweep: every candidate judged, the Pareto fronts, sweep.json, PNG plots and a page."""
from __future__ import annotations

import json

from cli_helpers import run_cli
from edgeport.sweep import loss, pareto


def test_pareto_keeps_only_the_undominated():
    rows = [{"bytes": 100, "drop": 0.0}, {"bytes": 50, "drop": 0.01}, {"bytes": 60, "drop": 0.02},
            {"bytes": 40, "drop": 0.05}, {"bytes": 50, "drop": 0.0}]
    assert pareto(rows, "bytes") == [3, 4]
    assert loss({"drop": 0.0123}) == 1.23 and loss({"agreement": 0.99}) == 1.0 and loss({}) is None


def test_sweep_of_digits_on_local_onnx(tmp_path):
    proc = run_cli("sweep", "sample:digits_cnn", "-t", "local-onnx", "--compress", "none", "-o", str(tmp_path), "-q")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "sweep.json").read_text())
    (target,) = doc["targets"]
    labels = [c["label"] for c in target["candidates"]]
    assert labels[0] == "fp32 (baseline)" and {"int8", "int8-dynamic", "fp16", "bf16"} <= set(labels)
    rows = target["candidates"]
    # the front is undominated and the size objective's pick is the smallest fitting candidate
    for i in target["pareto_size"]:
        assert not any(r["bytes"] <= rows[i]["bytes"] and r["loss_pt"] <= rows[i]["loss_pt"]
                       and (r["bytes"], r["loss_pt"]) != (rows[i]["bytes"], rows[i]["loss_pt"]) for r in rows)
    smallest = min((r for r in rows if r["passed"]), key=lambda r: r["bytes"])
    assert target["pick"] == smallest["label"] and target["judged_pick"]["passed"]
    png = (tmp_path / "sweep-local-onnx.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    page = (tmp_path / "sweep.html").read_text()
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert all(label in page for label in labels)
    # the text table marks the pick
    assert "*" in proc.stdout and target["pick"] in proc.stdout
