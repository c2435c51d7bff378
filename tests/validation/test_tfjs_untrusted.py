"""A TF.js model.json is untrusted data. Its weight paths are confined to the model folder and its
sizes bounded, in Python before any runtime starts and again in the JS runners; the Chromium
page's server serves nothing but the page's own routes; a JS side that stops answering is killed
within its deadline. Real Node, real Chromium, real exported models."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import RuntimeLoadError
from edgeport.exporters import ExportJob, get_exporter
from edgeport.progress import SILENT
from edgeport.targets.profile import load_profile, resolve_plan
from edgeport.validation.inspect import inspect_artifact
from edgeport.validation.runtimes import get_runtime
from edgeport.validation.runtimes import tfjs_chromium, tfjs_graph_io, tfjs_node
from edgeport.validation.runtimes.tfjs_model import MAX_MODEL_JSON_BYTES, _weight_bytes, open_model
from edgeport.validation.runtimes.tfjs_node import TEST_HANG_ENV

SHARD = "group1-shard1of1.bin"


@pytest.fixture(scope="module")
def digits_fp16(digits, tmp_path_factory):
    """digits_cnn exported to TF.js at fp16: float32 weights stored as float16 quantization."""
    out = tmp_path_factory.mktemp("tfjs-untrusted")
    plan = resolve_plan(load_profile("browser-tfjs"), "fp16")
    with tempfile.TemporaryDirectory() as work:
        art = get_exporter("tfjs").export(ExportJob(digits, digits.module, plan, None, SILENT, Path(work)), out)
    return art.path.parent  # the folder holding model.json and its shard


@pytest.fixture(scope="module")
def reference(digits):
    data = digits.eval_data.take(20)
    return data, digits.reference(data)["logits"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _set_paths(model_dir: Path, paths: list[str]) -> None:
    mj = model_dir / "model.json"
    doc = json.loads(mj.read_text())
    doc["weightsManifest"][0]["paths"] = paths
    mj.write_text(json.dumps(doc))


@pytest.fixture()
def escape(digits_fp16, tmp_path):
    """A factory: a copy of the model whose one shard path reaches a file outside its folder that
    holds exactly the shard's bytes (so only the confinement can refuse it)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    shutil.copyfile(digits_fp16 / SHARD, secret)

    def make(kind: str) -> Path:
        m = _copy(digits_fp16, tmp_path / f"m-{kind}")
        (m / SHARD).unlink()
        if kind == "dotdot":
            path = os.path.relpath(secret, m)
        elif kind == "dotdot-after-normalising":
            path = "sub/../" + os.path.relpath(secret, m)
        elif kind == "absolute":
            path = str(secret)
        elif kind == "symlink":
            (m / "link.bin").symlink_to(secret)
            path = "link.bin"
        elif kind == "symlinked-folder":
            (m / "weights").symlink_to(outside, target_is_directory=True)
            path = "weights/secret.bin"
        else:
            raise AssertionError(kind)
        _set_paths(m, [path])
        assert (m / path).resolve().read_bytes() == secret.read_bytes()  # it would be read
        return m

    return make


ESCAPES = ["dotdot", "dotdot-after-normalising", "absolute", "symlink", "symlinked-folder"]
REFUSAL = r"leaves the model folder|is absolute|link leading out of the model folder"


class _NoStart:
    def __init__(self, *a, **k):
        raise AssertionError("a runtime was started for a refused model")


# -- 1. weight paths confined, sizes bounded (Python, before Node or the browser) -------------

@pytest.mark.parametrize("kind", ESCAPES)
@pytest.mark.parametrize("name", ["tfjs-node", "tfjs-chromium"])
def test_shard_outside_the_model_folder_is_refused_before_the_runtime_starts(name, kind, escape, monkeypatch):
    m = escape(kind)
    monkeypatch.setattr(tfjs_node, "_NodeProcess", _NoStart)
    monkeypatch.setattr(tfjs_chromium, "_Browser", _NoStart)
    with pytest.raises(RuntimeLoadError, match=rf"^{name}: model.json: .*({REFUSAL})") as info:
        get_runtime(name).load(m, timeout_s=30)
    assert "\n" not in str(info.value)
    with pytest.raises(RuntimeLoadError, match=REFUSAL):  # the pre-flight says the same
        inspect_artifact("tfjs", m)


def test_edgeport_run_copies_no_outside_file_into_its_outputs(escape, reference, tmp_path):
    from edgeport.recheck import run_artifact

    m = escape("dotdot")
    data, _ = reference
    np.savez(tmp_path / "in.npz", x=data.inputs["x"][:2])
    with pytest.raises(RuntimeLoadError, match="leaves the model folder"):
        run_artifact(m / "model.json", tmp_path / "in.npz", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_shard_sizes_must_match_what_the_weights_declare(digits_fp16, tmp_path):
    doc = json.loads((digits_fp16 / "model.json").read_text())
    size = (digits_fp16 / SHARD).stat().st_size
    declared = sum(_weight_bytes(w, "w") for w in doc["weightsManifest"][0]["weights"])
    assert declared == size == 249596  # float32 weights stored as float16: 2 bytes each
    model = open_model(digits_fp16, "tfjs-node")
    assert [(s.rel, s.size) for s in model.shards] == [(SHARD, size)] and model.weight_bytes == size

    longer = _copy(digits_fp16, tmp_path / "longer")
    with open(longer / SHARD, "ab") as f:
        f.write(b"\0" * 4)
    with pytest.raises(RuntimeLoadError, match=rf"hold more bytes than .*declare \({size} B; '{SHARD}' reaches {size + 4} B\)"):
        open_model(longer, "tfjs-node")

    shorter = _copy(digits_fp16, tmp_path / "shorter")
    (shorter / SHARD).write_bytes((digits_fp16 / SHARD).read_bytes()[:1000])
    with pytest.raises(RuntimeLoadError, match=rf"hold 1000 B but its weights declare {size} B"):
        open_model(shorter, "tfjs-chromium")

    split = _copy(digits_fp16, tmp_path / "split")  # two shards adding up: fine, and in order
    raw = (split / SHARD).read_bytes()
    (split / "a.bin").write_bytes(raw[:100_000])
    (split / "b.bin").write_bytes(raw[100_000:])
    _set_paths(split, ["a.bin", "./b.bin"])
    assert [(s.rel, s.size) for s in open_model(split, "tfjs-node").shards] == [("a.bin", 100_000), ("b.bin", size - 100_000)]


@pytest.mark.parametrize("entry, nbytes", [
    ({"shape": [10, 3], "dtype": "float32"}, 120),
    ({"shape": [10, 3], "dtype": "int32"}, 120),
    ({"shape": [10, 3], "dtype": "bool"}, 30),
    ({"shape": [10, 3], "dtype": "complex64"}, 240),
    ({"shape": [], "dtype": "float32"}, 4),
    ({"shape": [0, 7], "dtype": "float32"}, 0),
    ({"shape": [10, 3], "dtype": "float32", "quantization": {"dtype": "float16", "original_dtype": "float32"}}, 60),
    ({"shape": [10, 3], "dtype": "float32", "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.01}}, 30),
    ({"shape": [10, 3], "dtype": "int32", "quantization": {"dtype": "uint16", "min": 0, "scale": 1}}, 60),
])
def test_declared_bytes_follow_dtype_shape_and_quantization(entry, nbytes):
    assert _weight_bytes({"name": "w", **entry}, "w") == nbytes


@pytest.mark.parametrize("entry, why", [
    ({"shape": [3], "dtype": "string"}, "string weights are not loaded"),
    ({"shape": [3], "dtype": "float64"}, "dtype 'float64' is not one of"),
    ({"shape": [3, -1], "dtype": "float32"}, "not a size >= 0"),
    ({"shape": [True], "dtype": "float32"}, "not a size >= 0"),
    ({"shape": [3], "dtype": "int32", "quantization": {"dtype": "float16"}}, "float16 quantization of a int32"),
    ({"shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "min": 0}}, "scale must be a finite"),
    ({"shape": [3], "dtype": "float32", "quantization": {"dtype": "int4"}}, "is not uint8, uint16 or float16"),
])
def test_weights_tfjs_could_not_decode_are_refused(entry, why, digits_fp16, tmp_path):
    m = _copy(digits_fp16, tmp_path / "m")
    doc = json.loads((m / "model.json").read_text())
    doc["weightsManifest"][0]["weights"][0] = {"name": "n0", **entry}
    (m / "model.json").write_text(json.dumps(doc))
    with pytest.raises(RuntimeLoadError, match=rf"^tfjs-node: model.json is not a TF.js graph model.json: weightsManifest\[0\]\.weights\[0\].*{why}"):
        open_model(m, "tfjs-node")


def test_a_model_json_beyond_the_limit_is_refused_unread(digits_fp16, tmp_path):
    m = _copy(digits_fp16, tmp_path / "m")
    with open(m / "model.json", "r+b") as f:  # sparse: 64 MB + 1 byte without writing them
        f.truncate(MAX_MODEL_JSON_BYTES + 1)
    t0 = time.perf_counter()
    for call in (lambda: open_model(m, "tfjs-node"), lambda: inspect_artifact("tfjs", m)):
        with pytest.raises(RuntimeLoadError, match="model.json is larger than 64 MB; refused"):
            call()
    assert time.perf_counter() - t0 < 2.0


def test_other_refusals_name_the_file(digits_fp16, tmp_path):
    fifo = _copy(digits_fp16, tmp_path / "fifo")
    (fifo / SHARD).unlink()
    os.mkfifo(fifo / SHARD)  # reading it would block forever
    with pytest.raises(RuntimeLoadError, match=f"weight file '{SHARD}' is not a regular file"):
        open_model(fifo, "tfjs-node")
    gone = _copy(digits_fp16, tmp_path / "gone")
    (gone / SHARD).unlink()
    with pytest.raises(RuntimeLoadError, match=f"weight file '{SHARD}' does not exist"):
        open_model(gone, "tfjs-node")
    ops = inspect_artifact("tfjs", gone)  # the pre-flight lists a missing shard instead
    assert ops.blocking and ops.details["missing_files"] == [SHARD]
    for i, (bad, why) in enumerate([("a\\..\\x.bin", "backslash"), ("%2e%2e/x.bin", "'%'"),
                                    ("x.bin?y", "'\\?'"), ("", "empty")]):
        m = _copy(digits_fp16, tmp_path / f"p{i}")
        _set_paths(m, [bad])
        with pytest.raises(RuntimeLoadError, match=why):
            open_model(m, "tfjs-node")


# -- 1. ... and again in the JS runners, whatever Python let through -------------------------

def _node_load(proc: tfjs_node._NodeProcess, model_dir: Path) -> dict:
    return proc.call({"cmd": "load", "model": str(model_dir / "model.json"), "backend": "cpu", "threads": 1}, 60)


def test_the_node_runner_confines_shards_itself(escape, digits_fp16, reference, tmp_path):
    """Python's checks bypassed: node_runner.js refuses each escape, an oversize shard before
    reading it, and a FIFO without blocking; then loads the real model in the same process."""
    cases = [(escape(kind), "leads out of the model folder|leaves the model folder|is absolute") for kind in ESCAPES]
    longer = _copy(digits_fp16, tmp_path / "longer")
    with open(longer / SHARD, "ab") as f:
        f.write(b"\0" * 8)
    cases.append((longer, "holds 249604 B, more than the 249596 B allowed"))
    fifo = _copy(digits_fp16, tmp_path / "fifo")
    (fifo / SHARD).unlink()
    os.mkfifo(fifo / SHARD)
    cases.append((fifo, "is not a regular file"))
    shorter = _copy(digits_fp16, tmp_path / "shorter")
    (shorter / SHARD).write_bytes(b"\0" * 1000)
    cases.append((shorter, "hold 1000 B, its weights declare 249596 B"))
    proc = tfjs_node._NodeProcess("tfjs-node")
    try:
        for model_dir, why in cases:
            t0 = time.perf_counter()
            with pytest.raises(RuntimeLoadError, match=rf"^tfjs-node: load failed: .*({why})"):
                _node_load(proc, model_dir)
            assert time.perf_counter() - t0 < 10, model_dir.name
        assert proc.proc.poll() is None  # refusing is an answer, not a crash
        ans = _node_load(proc, digits_fp16)
        assert ans["ok"] and ans["backend"] == "cpu"
    finally:
        proc.stop()


def test_the_page_confines_shards_itself(digits_fp16, reference):
    """Python's checks bypassed: the page refuses a shard URL outside /model/ (here one the server
    does serve, /runner/page.js) and a shard larger than the manifest declares."""
    data, ref = reference
    sess = get_runtime("tfjs-chromium").load(digits_fp16, timeout_s=60)
    try:
        doc = json.loads((digits_fp16 / "model.json").read_text())
        for paths, why in [(["../runner/page.js"], "leaves the model folder"),
                           (["sub/../../runner/page.js"], "leaves the model folder")]:
            doc["weightsManifest"][0]["paths"] = paths
            sess._routes[tfjs_chromium.MODEL_URL] = json.dumps(doc).encode()
            with pytest.raises(RuntimeLoadError, match=f"^tfjs-chromium: load failed: .*{why}"):
                sess._call({"cmd": "load", "model": tfjs_chromium.MODEL_URL, "backend": "wasm", "threads": 1})
        doc["weightsManifest"][0]["paths"] = [SHARD]
        doc["weightsManifest"][0]["weights"][-1]["shape"] = [5]  # 10 -> 5 values: 10 B fewer declared
        sess._routes[tfjs_chromium.MODEL_URL] = json.dumps(doc).encode()
        with pytest.raises(RuntimeLoadError, match="249596 B, more than the 249586 B allowed"):
            sess._call({"cmd": "load", "model": tfjs_chromium.MODEL_URL, "backend": "wasm", "threads": 1})
        out = sess.predict(data)["logits"]  # the model loaded first is still the one that runs
        assert np.abs(out - ref).max() < 0.02
    finally:
        sess.close()


# -- 2. the page server serves the page's routes and nothing else ----------------------------

def _request(base: str, method: str, path: str, host: str | None = None) -> tuple[int, bytes, dict]:
    hostport = base.split("//", 1)[1]
    conn = http.client.HTTPConnection(hostport, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host or hostport)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def test_the_page_server_serves_only_its_routes(digits_fp16, tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("not for the page")
    monkeypatch.chdir(tmp_path)  # what SimpleHTTPRequestHandler's HEAD used to serve
    sess = get_runtime("tfjs-chromium").load(digits_fp16, timeout_s=60)
    try:
        base = sess._browser.base
        runner = tfjs_chromium.RUNNER_DIR
        for method in ("GET", "HEAD"):
            for path in ("/secret.txt", "/", "/runner/", "/model/", "/io/", "/tfjs/",
                         "/model/../secret.txt", "/model/%2e%2e/%2e%2e/secret.txt", "/runner/package.json",
                         "/runner/node_runner.js", "/tfjs/tfjs-core/package.json", "/model/model.json/",
                         f"/runner/{'..%2f' * 12}etc/hostname"):
                status, body, _ = _request(base, method, path)
                assert status == 404, (method, path, status)
                assert b"not for the page" not in body
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "TRACE"):
            assert _request(base, method, "/runner/page.html")[0] == 405, method
            assert _request(base, method, "/secret.txt")[0] == 405, method
        status, body, headers = _request(base, "GET", "/runner/page.js")
        assert status == 200 and body == (runner / "page.js").read_bytes()
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        status, body, _ = _request(base, "GET", f"/model/{SHARD}")
        assert status == 200 and body == (digits_fp16 / SHARD).read_bytes()
        status, body, headers = _request(base, "HEAD", f"/model/{SHARD}")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) == 249596
        served = json.loads(_request(base, "GET", "/model/model.json")[1])
        assert served == json.loads((digits_fp16 / "model.json").read_text())
        assert _request(base, "GET", "/runner/page.js", host="attacker.example:80")[0] == 404
    finally:
        sess.close()


# -- 3. a JS side that stops answering is killed within its deadline ---------------------------

def _forever_model(folder: Path) -> Path:
    """A real graph model whose execution never ends: a TF while loop (Enter/Merge/Switch/
    NextIteration/Exit) whose condition, i == i, is always true."""
    import base64

    F, I = {"type": "DT_FLOAT"}, {"type": "DT_INT32"}
    frame = {"s": base64.b64encode(b"forever").decode()}
    scalar_i32 = {"tensor": {"dtype": "DT_INT32", "tensorShape": {}}}
    shape = {"dim": [{"size": "1"}, {"size": "1"}]}

    def node(name, op, inputs=(), **attr):
        return {"name": name, "op": op, "input": list(inputs), "attr": attr}

    nodes = [
        node("x", "Placeholder", dtype=F, shape={"shape": shape}),
        node("start", "Const", dtype=I, value=scalar_i32),
        node("enter_i", "Enter", ["start"], T=I, frame_name=frame, is_constant={"b": False}),
        node("enter_x", "Enter", ["x"], T=F, frame_name=frame, is_constant={"b": False}),
        node("merge_i", "Merge", ["enter_i", "next_i"], T=I, N={"i": "2"}),
        node("merge_x", "Merge", ["enter_x", "next_x"], T=F, N={"i": "2"}),
        node("always", "Equal", ["merge_i", "merge_i"], T=I),
        node("cond", "LoopCond", ["always"]),
        node("switch_i", "Switch", ["merge_i", "cond"], T=I),
        node("switch_x", "Switch", ["merge_x", "cond"], T=F),
        node("body_i", "Identity", ["switch_i:1"], T=I),
        node("body_x", "Identity", ["switch_x:1"], T=F),
        node("one", "Const", ["^body_i"], dtype=I, value=scalar_i32),
        node("add_i", "AddV2", ["body_i", "one"], T=I),
        node("next_i", "NextIteration", ["add_i"], T=I),
        node("next_x", "NextIteration", ["body_x"], T=F),
        node("exit_x", "Exit", ["switch_x"], T=F),
        node("Identity", "Identity", ["exit_x"], T=F),
    ]
    doc = {"format": "graph-model", "generatedBy": "edgeport tests", "convertedBy": None,
           "modelTopology": {"node": nodes, "library": {}, "versions": {"producer": 1}},
           "signature": {"inputs": {"x": {"name": "x:0", "dtype": "DT_FLOAT", "tensorShape": shape}},
                         "outputs": {"y": {"name": "Identity:0", "dtype": "DT_FLOAT", "tensorShape": shape}}},
           "weightsManifest": [{"paths": ["w.bin"], "weights": [{"name": "start", "shape": [], "dtype": "int32"},
                                                                {"name": "one", "shape": [], "dtype": "int32"}]}]}
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps(doc))
    (folder / "w.bin").write_bytes(struct.pack("<ii", 0, 1))
    return folder


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] in "ZX"  # reaped or zombie
    except (OSError, IndexError):
        return True


@pytest.mark.parametrize("name", ["tfjs-node", "tfjs-chromium"])
def test_a_model_that_never_finishes_is_stopped_at_the_deadline(name, tmp_path):
    sess = get_runtime(name).load(_forever_model(tmp_path / "forever"), timeout_s=4)
    pids = [sess._proc.proc.pid] if name == "tfjs-node" else sess._browser.processes()
    assert pids and not any(_gone(p) for p in pids)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeLoadError, match=rf"^{name}: no answer within 4 s \(to 'predict'\); the "
                                               "(Node runner was killed|browser was stopped)$"):
        sess.run({"x": np.ones((1, 1), np.float32)})
    assert 3.9 < time.perf_counter() - t0 < 4 + 5
    time.sleep(0.5)
    assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
    if name == "tfjs-chromium":
        assert sess._browser.processes() == []
    with pytest.raises(RuntimeLoadError):  # the session stays refused, it does not hang
        sess.run({"x": np.ones((1, 1), np.float32)})
    sess.close()


def test_a_node_runner_that_stops_answering_while_loading_is_killed(digits_fp16, monkeypatch):
    started: list[tfjs_node._NodeProcess] = []

    class Recorded(tfjs_node._NodeProcess):
        def __init__(self, label: str):
            super().__init__(label)
            started.append(self)

    monkeypatch.setattr(tfjs_node, "_NodeProcess", Recorded)
    monkeypatch.setenv(TEST_HANG_ENV, "load")  # node_runner.js busy-loops on 'load'
    t0 = time.perf_counter()
    with pytest.raises(RuntimeLoadError, match=r"^tfjs-node: no answer within 3 s \(to 'load'\); the Node runner was killed$"):
        get_runtime("tfjs-node").load(digits_fp16, timeout_s=3)
    assert time.perf_counter() - t0 < 3 + 5
    (proc,) = started
    assert proc.proc.returncode == -9 and _gone(proc.proc.pid)


def test_a_page_stuck_in_a_loop_is_killed_at_the_deadline(digits_fp16, reference, monkeypatch):
    """The page blocks its own thread (Playwright's deadlines, enforced by scripts in that page,
    never fire): the watchdog kills the browser; no process of it is left."""
    data, _ = reference
    monkeypatch.setenv(TEST_HANG_ENV, "predict")
    sess = get_runtime("tfjs-chromium").load(digits_fp16, timeout_s=4)
    pids = sess._browser.processes()
    t0 = time.perf_counter()
    with pytest.raises(RuntimeLoadError, match=r"^tfjs-chromium: no answer within 4 s \(to 'predict'\); the browser was stopped$"):
        sess.predict(data)
    assert time.perf_counter() - t0 < 4 + tfjs_chromium.WATCHDOG_GRACE_S + tfjs_chromium.STOP_GRACE_S + 2
    time.sleep(0.5)
    assert pids and all(_gone(p) for p in pids) and sess._browser.processes() == []
    sess.close()


# -- 4. any model.json: the Python readers raise edgeport errors, nothing else -----------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgeport.errors import EdgeportError  # noqa: E402
from edgeport.validation.inspect import tfjs as inspect_tfjs  # noqa: E402

_KEYS = ["paths", "weights", "shape", "dtype", "quantization", "name", "node", "op", "input", "attr",
         "signature", "inputs", "outputs", "tensorShape", "dim", "size", "unknownRank", "edgeport", "key",
         "min", "scale", "format", "library", "function", "nodeDef", "userDefinedMetadata", "modelTopology",
         "weightsManifest", "type", "value"]
_ODD = ["../../../etc/hostname", "/etc/hostname", "a/../../x.bin", "..", ".", "", "a\\..\\x", "%2e%2e/x",
        "x.bin?y", "#", "\x00", SHARD, "./" + SHARD, "sub/../" + SHARD, "../outside/secret.bin",
        "float16", "uint8", "uint16", "int4", "string", "complex64", "bool", "int32", "float32", "DT_FLOAT",
        "DT_INT64", "DT_BOGUS", "graph-model", "layers-model", "-1", "-2", "1e9", "99999999999999999999",
        "9" * 5000, "Placeholder", "Const", "x", "output_0"]
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 2**31, 2**62]),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(_ODD))
_JSON = st.recursive(_LEAF, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), kids, max_size=3), max_leaves=6)


def _paths(doc, prefix=()):
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _mutate(doc, path, action, value):
    *head, last = path
    parent = doc
    for k in head:
        parent = parent[k]
    if action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent[last], dict):
        parent[last][value[0]] = value[1]
    elif action == "add" and isinstance(parent[last], list):
        parent[last].append(value[1])
    else:
        parent[last] = value[1]


_ACTIONS = st.sampled_from(["replace", "replace", "delete", "add"])
_DAMAGE = st.sampled_from(["none"] * 6 + ["truncate", "garbage", "deep", "not-utf8"])


@st.composite
def _model_json_bytes(draw, base_text: str, paths: st.SearchStrategy) -> bytes:
    """The real model.json, mutated: values replaced by any JSON (wrong types, huge or negative
    sizes, odd dtypes, escaping paths), keys deleted or added; or its text damaged."""
    doc = json.loads(base_text)  # a fresh copy
    for _ in range(draw(st.integers(1, 3))):
        path = draw(paths)
        action = draw(_ACTIONS)
        value = (draw(st.sampled_from(_KEYS)), draw(_JSON))
        try:
            _mutate(doc, path, action, value)
        except (KeyError, IndexError, TypeError):  # an earlier mutation changed the shape there
            pass
    if draw(st.integers(0, 9)) == 0:
        doc = draw(_JSON)  # not even an object
    raw = json.dumps(doc).encode()
    damage = draw(_DAMAGE)
    if damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif damage == "garbage":
        raw = draw(st.binary(max_size=64))
    elif damage == "deep":
        raw = b"[" * draw(st.integers(1000, 100_000))
    elif damage == "not-utf8":
        raw = b"\xff\xfe" + raw
    return raw


def test_any_mutated_model_json_raises_only_edgeport_errors(digits_fp16, tmp_path):
    """Thousands of model.json documents, without starting Node: the reader, the confinement and
    size checks, the graph I/O reader and the op pre-flight either accept the document (and then
    every shard they accept is a regular file inside the folder, sizes as declared) or raise an
    EdgeportError with a one-line message."""
    base_text = (digits_fp16 / "model.json").read_text()
    all_paths = [p for p in _paths(json.loads(base_text)) if p]
    weight_paths = [p for p in all_paths if p[0] == "weightsManifest"]
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copyfile(digits_fp16 / SHARD, folder / SHARD)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.bin").write_bytes(b"\0" * 16)
    root = folder.resolve()
    outcomes = {"accepted": 0, "refused": 0}

    class _CheapGzip:  # the pre-flight's gzip sizing is not under test here; 25 ms a call is
        @staticmethod
        def compress(data, *a, **k):
            return data[:8]

    @settings(max_examples=2000, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(raw=_model_json_bytes(base_text, st.sampled_from(weight_paths) | st.sampled_from(all_paths)))
    def check(raw):
        (folder / "model.json").write_bytes(raw)
        calls = {"open_model": lambda: open_model(folder, "tfjs-node"),
                 "read_graph_io": lambda: tfjs_graph_io.read_graph_io(folder / "model.json"),
                 "inspect": lambda: inspect_artifact("tfjs", folder)}
        for what, call in calls.items():
            try:
                result = call()
            except EdgeportError as exc:
                assert str(exc) and "\n" not in str(exc), (what, str(exc))
                outcomes["refused"] += 1
                continue
            outcomes["accepted"] += 1
            if what == "open_model":
                for s in result.shards:
                    assert s.path.is_relative_to(root) and s.path.is_file() and not s.path.is_symlink()
                assert result.weight_bytes == sum(s.size for s in result.shards)
                assert all(s.rel == SHARD for s in result.shards)  # the only file inside
            elif what == "read_graph_io":
                assert all(isinstance(s.name, str) and all(isinstance(d, int) and d >= -1 for d in s.shape)
                           for s in result.inputs)
                assert all(isinstance(n, str) for n in result.output_names)
            else:
                assert all(isinstance(op, str) for op in result.used)

    from unittest import mock

    t0 = time.perf_counter()
    with mock.patch.object(inspect_tfjs, "gzip", _CheapGzip):
        check()
    assert time.perf_counter() - t0 < 60  # ~10 s on a quiet machine, ~25 s on a busy one
    assert outcomes["accepted"] > 100 and outcomes["refused"] > 1000, outcomes  # both sides explored
