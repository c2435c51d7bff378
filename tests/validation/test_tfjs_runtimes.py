"""The TF.js runtimes on their own: real Node (wasm, cpu) and real headless Chromium, fed a graph
model exported here and one stripped of edgeport's metadata (as anyone's model.json); bounded
by timeouts, failures reported as RuntimeLoadError."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import RuntimeLoadError
from edgeport.exporters import ExportJob, get_exporter
from edgeport.progress import SILENT
from edgeport.targets.profile import load_profile, resolve_plan
from edgeport.validation.runtimes import get_runtime, runtime_for_path


@pytest.fixture(scope="module")
def digits_fp32(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfjs-rt")
    plan = resolve_plan(load_profile("browser-tfjs"), "fp32")
    with tempfile.TemporaryDirectory() as work:
        return get_exporter("tfjs").export(ExportJob(digits, digits.module, plan, None, SILENT, Path(work)), out)


@pytest.fixture(scope="module")
def reference(digits):
    data = digits.eval_data.take(100)
    return data, digits.reference(data)["logits"]


@pytest.mark.parametrize("name", ["tfjs-node", "tfjs-node-cpu", "tfjs-chromium"])
def test_runtime_matches_torch_and_times_inside_js(name, digits_fp32, reference):
    data, ref = reference
    sess = get_runtime(name).load(digits_fp32.path, threads=1, timeout_s=60)
    try:
        assert [s.name for s in sess.input_specs] == ["x"] and sess.input_specs[0].shape == (1, 1, 8, 8)
        assert sess.output_names == ("logits",)
        out = sess.predict(data)["logits"]
        one = sess.run(data.sample(3))["logits"]
        timing = sess.time(data.sample(0), warmup=3, runs=20)
    finally:
        sess.close()
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-4
    assert (out.argmax(1) == ref.argmax(1)).mean() == 1.0
    np.testing.assert_allclose(one, out[3:4], atol=1e-6)
    assert timing.provenance == "measured" and timing.runtime == name
    assert len(timing.times_ms) == 20 and all(0 < t < 1000 for t in timing.times_ms)
    assert timing.load_ms > 0 and timing.extra["first_inference_ms"] > 0
    backend = "cpu" if name.endswith("cpu") else "wasm"
    assert f"{backend} backend" in timing.where and timing.extra["backend"] == backend
    if name == "tfjs-chromium":
        assert timing.extra["cross_origin_isolated"] is True  # COOP/COEP: fine-grained timers


def test_foreign_model_json_is_run_from_its_signature(digits_fp32, reference, tmp_path):
    """A model.json without edgeport's metadata (anyone's): names come from its signature."""
    from edgeport.recheck import run_artifact

    shutil.copytree(digits_fp32.path.parent, tmp_path / "m")
    mj = tmp_path / "m" / "model.json"
    doc = json.loads(mj.read_text())
    doc.pop("userDefinedMetadata")
    mj.write_text(json.dumps(doc))
    assert runtime_for_path(mj) == "tfjs-node"
    data, ref = reference
    np.savez(tmp_path / "in.npz", x=data.inputs["x"][:10])
    outs = run_artifact(mj, tmp_path / "in.npz", tmp_path / "out.npz")
    assert list(outs) == ["logits"]  # edgeport keys the signature itself by the source names
    assert np.abs(outs["logits"] - ref[:10]).max() < 1e-4
    with np.load(tmp_path / "out.npz") as z:
        assert z["logits"].shape == (10, 10)


def test_hung_node_runner_is_stopped_and_reported(digits_fp32, reference):
    data, _ = reference
    sess = get_runtime("tfjs-node").load(digits_fp32.path, timeout_s=60)
    proc = sess._proc.proc
    sess.timeout_s = 0.001  # no answer can come this fast: the call must give up, not wait
    with pytest.raises(RuntimeLoadError, match=r"^tfjs-node: no answer within 0.001 s \(to 'predict'\)"):
        sess.predict(data)
    assert proc.poll() is not None  # the runner was stopped
    sess.close()


def test_crashed_node_runner_is_a_reported_failure(digits_fp32, reference):
    data, _ = reference
    sess = get_runtime("tfjs-node-cpu").load(digits_fp32.path, timeout_s=60)
    sess._proc.proc.kill()
    with pytest.raises(RuntimeLoadError, match="exited"):
        sess.predict(data)
    sess.close()


@pytest.mark.parametrize("name", ["tfjs-node", "tfjs-chromium"])
def test_damaged_weights_fail_to_load_with_the_reason(name, digits_fp32, tmp_path):
    shutil.copytree(digits_fp32.path.parent, tmp_path / "m")
    shard = next((tmp_path / "m").glob("*.bin"))
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:1000])  # refused before the runtime starts
    with pytest.raises(RuntimeLoadError, match=rf"^{name}: model.json: weight files of group 0 hold 1000 B "
                                               rf"but its weights declare {size} B; refused$"):
        get_runtime(name).load(tmp_path / "m", timeout_s=60)


def test_hung_page_is_stopped_and_reported(digits_fp32, reference):
    data, _ = reference
    sess = get_runtime("tfjs-chromium").load(digits_fp32.path, timeout_s=60)
    sess.timeout_s = 0.001
    with pytest.raises(RuntimeLoadError, match="no answer within"):
        sess.predict(data)
    assert sess._browser.context is None  # the browser was stopped
    sess.close()


def test_int64_ids_beyond_int32_are_refused(text_transformer, tmp_path):
    plan = resolve_plan(load_profile("browser-tfjs"), "fp16")
    with tempfile.TemporaryDirectory() as work:
        art = get_exporter("tfjs").export(
            ExportJob(text_transformer, text_transformer.module, plan, None, SILENT, Path(work)), tmp_path)
    sess = get_runtime("tfjs-node").load(art.path, timeout_s=60)
    try:
        assert sess.input_specs[0].dtype == "int64"  # as the source declares; fed as int32
        ok = sess.run({"input_ids": text_transformer.example_inputs[0]})
        assert ok["logits"].shape == (1, 4)
        bad = text_transformer.example_inputs[0].copy()
        bad[0, 0] = 2**40
        with pytest.raises(RuntimeLoadError, match="beyond int32"):
            sess.run({"input_ids": bad})
    finally:
        sess.close()
