"""--precision auto: candidates judged as exported artifacts in the target runtime on a selection
split, the pick judged again on the held-out rest; the baseline always there."""
from __future__ import annotations

import json


from cli_helpers import run_cli
from edgeport.pipeline import export
from edgeport.search import Auto, pick, ranking, splits
from edgeport.validation.golden import read_golden

FAST = '[latency]\nwarmup = 2\nruns = 20\n'


def _profile(tmp_path, extra="", precisions='["fp32", "fp16", "int8", "int8-dynamic"]', default='"auto"'):
    f = tmp_path / "local-onnx.toml"
    f.write_text(f'name = "local-onnx"\nformat = "onnx"\nprecisions = {precisions}\ndefault_precision = {default}\n'
                 + FAST + extra)
    return f


def test_auto_picks_the_smallest_candidate_that_fits_and_judges_it_on_held_out_samples(digits, tmp_path):
    (result,) = export(digits, [str(_profile(tmp_path))], out_dir=tmp_path / "out")
    report = result.report
    auto = report.auto
    labels = [c["label"] for c in auto["candidates"]]
    assert labels[0] == "fp32 (baseline)" and set(labels) == {"fp32 (baseline)", "int8", "int8-dynamic", "fp16"}
    fitting = [c for c in auto["candidates"] if c["passed"]]
    smallest = min(fitting, key=lambda c: c["bytes"])
    assert auto["pick"] == smallest["label"] and report.precision == smallest["precision"]
    assert report.passed and report.size.ratio <= 0.28
    assert report.accuracy.drop <= auto["budget"]["accuracy_drop_max"]
    # the selection split chose, the other two thirds judged: they are the bundle's golden set
    n = len(digits.eval_data)
    assert auto["selection_samples"] + auto["judgment_samples"] == n
    golden = read_golden(result.bundle / "golden.npz", ["logits"])
    assert len(golden.data) == auto["judgment_samples"] == report.parity.samples
    rows = {tuple(r) for r in golden.data.inputs["x"].reshape(len(golden.data), -1)}
    assert len(rows) == len(golden.data)  # no sample twice


def test_a_budget_nothing_compressed_meets_bundles_the_baseline(digits, tmp_path):
    strict = ('[tolerances.fp16]\nsqnr_db_min = 300.0\n[tolerances.int8]\nsqnr_db_min = 300.0\n'
              '[tolerances.int8-dynamic]\nsqnr_db_min = 300.0\n')
    f = _profile(tmp_path, strict)
    proc = run_cli("export", "sample:digits_cnn", "-t", str(f), "--json", "-o", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    auto = report["auto"]
    assert auto["pick"] == "fp32 (baseline)" and report["precision"] == "fp32" and report["passed"]
    assert "no candidate beyond the fp32 baseline fits" in auto["why"]
    for cand in auto["candidates"][1:]:
        assert not cand["passed"] and "sqnr" in cand["why"]
    assert auto["closest"] in {c["label"] for c in auto["candidates"]}


def test_the_latency_objective_takes_the_fastest_that_fits(digits, tmp_path):
    f = _profile(tmp_path, precisions='["fp32", "fp16", "int8-dynamic"]', default='"fp32"')
    (result,) = export(digits, [str(f)], precision=Auto(objective="latency"), out_dir=tmp_path / "out")
    auto = result.report.auto
    fitting = [c for c in auto["candidates"] if c["passed"]]
    fastest = min(fitting, key=lambda c: c["p50_ms"]["onnxruntime"])
    assert auto["pick"] == fastest["label"] and auto["objective"] == "latency"


def test_pick_prefers_the_earlier_candidate_on_a_tie_and_the_baseline_when_nothing_fits():
    rows = [{"passed": True, "bytes": 100, "p50_ms": {"r": 1.0}}, {"passed": True, "bytes": 50, "p50_ms": {"r": 2.0}},
            {"passed": True, "bytes": 50, "p50_ms": {"r": 0.5}}, {"passed": False, "bytes": 10, "p50_ms": {"r": 0.1}}]
    assert pick(rows, "size") == 1 and pick(rows, "latency") == 2
    assert pick([{**r, "passed": False} for r in rows], "size") == 0


def test_compression_candidates_reach_an_eighth_of_fp32_within_one_point(digits, tmp_path):
    f = _profile(tmp_path, precisions='["fp32", "int8"]')
    (result,) = export(digits, [str(f)], precision=Auto(compress=True), out_dir=tmp_path / "out")
    report = result.report
    labels = [c["label"] for c in report.auto["candidates"]]
    assert "int8 + channels 0.5 + kd" in labels
    assert report.auto["pick"] == "int8 + channels 0.5 + kd"
    assert report.passed and report.size.ratio <= 0.12
    assert report.accuracy.drop <= 0.01
    assert [s["kind"] for s in report.compression.steps] == ["channels", "distill"]


def test_search_flags_need_auto_and_a_profile_may_default_to_auto(tmp_path):
    proc = run_cli("export", "sample:digits_cnn", "-t", "local-onnx", "--objective", "latency",
                   "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "--precision auto" in proc.stderr and not (tmp_path / "o").exists()
    from edgeport.targets.profile import load_profile

    assert load_profile(str(_profile(tmp_path))).auto
    assert not load_profile("local-onnx").auto


def test_ranking_puts_fitting_candidates_best_first_and_the_baseline_last():
    rows = [{"passed": False, "bytes": 400, "p50_ms": {"r": 1.0}}, {"passed": True, "bytes": 100, "p50_ms": {"r": 0.9}},
            {"passed": True, "bytes": 50, "p50_ms": {"r": 2.0}}]
    assert ranking(rows, "size") == [2, 1, 0] and ranking(rows, "latency") == [1, 2, 0]
    assert ranking([{**rows[0], "passed": True}, *rows[1:]], "size") == [2, 1, 0]


def test_the_selection_split_is_never_a_handful():
    for n, chosen in [(64, 32), (512, 171), (30, 15), (2, 1), (1, 1)]:
        sel, held = splits(n)
        assert len(sel) == chosen and (len(held) == n - chosen or n == 1)
        assert not set(sel) & set(held) or n == 1


def _tie_breaker(n: int):
    """Two logits a hair apart on the held-out samples (fp16 rounds the hair away, so its top-1
    flips) and far apart on the selection samples (fp16 agrees there)."""
    import numpy as np
    import torch

    from edgeport.data import Dataset
    from edgeport.source import ModelSource

    width = 4096  # features past the first two are zero: their weights only make fp16 the smaller file
    layer = torch.nn.Linear(width, 2, bias=False)
    with torch.no_grad():
        layer.weight.normal_()
        layer.weight[:, :2] = torch.tensor([[1.0, 0.0], [1.0 + 1e-4, 5.0]])
    sel, _ = splits(n)
    x = np.zeros((n, width), np.float32)
    x[:, 0] = np.random.default_rng(3).uniform(1.0, 2.0, n)
    x[sel, 1] = 1.0
    return ModelSource("tie_breaker", layer.eval(), (x[:1],), ("x",), ("logits",), task="classification",
                       eval_data=Dataset({"x": x}, None, "tie breaker"))


def test_a_pick_that_fails_on_the_held_out_split_gives_way_to_the_next(tmp_path):
    f = _profile(tmp_path, precisions='["fp32", "fp16"]')
    (result,) = export(_tie_breaker(64), [str(f)], out_dir=tmp_path / "out")
    auto = result.report.auto
    fp16 = next(c for c in auto["candidates"] if c["label"] == "fp16")
    assert fp16["passed"] and fp16["agreement"] == 1.0  # on the selection split
    (failure,) = auto["held_out_failures"]
    assert failure["label"] == "fp16" and "top1_agreement" in failure["why"]
    assert auto["pick"] == "fp32 (baseline)" and result.report.precision == "fp32" and result.report.passed
    assert result.report.parity.samples == auto["judgment_samples"] == 32
