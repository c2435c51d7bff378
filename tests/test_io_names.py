"""Input and output names come from the user's model (forward's arguments, a dict's keys, a
namedtuple's fields) and every artifact carries them: read back from the artifact itself."""
from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from cli_helpers import assert_one_line_error, cli_json, run_cli
from edgeport.errors import ModelLoadError
from edgeport.pipeline import export
from edgeport.source import ModelSource
from edgeport.source_specs import load_source

DICT_SPEC = "tests/data/io_models.py:dict_heads"
TUPLE_SPEC = "tests/data/io_models.py:namedtuple_heads"
INPUTS = ["image", "features"]
#: the namedtuple's fields, deliberately not in alphabetical order
FIELDS = ["score", "embedding", "logits"]
SHAPES = {"score": [1], "embedding": [4], "logits": [5]}
COSINE_MIN = 0.9999


def _assert_io(io: dict, inputs: list[str], outputs: list[str]) -> None:
    """The report's io block: each source name beside the artifact's own name for it."""
    assert [(i["name"], i["artifact_name"]) for i in io["inputs"]] == [(n, n) for n in inputs]
    assert [(o["name"], o["artifact_name"]) for o in io["outputs"]] == [(n, n) for n in outputs]
    for o in io["outputs"]:
        assert o["shape"] == o["artifact_shape"], o


def _assert_parity(parity: dict, outputs: list[str]) -> None:
    assert [o["name"] for o in parity["outputs"]] == outputs
    for o in parity["outputs"]:
        assert o["passed"] and o["cosine"] >= COSINE_MIN and o["max_abs"] < 1e-4, o


# --- how names are chosen (no conversion) --------------------------------------------------------
def test_names_come_from_forward_and_its_return_value():
    src = load_source(DICT_SPEC)
    assert src.input_names == tuple(INPUTS) and src.output_names == ("logits", "score")
    nt = load_source(TUPLE_SPEC)
    assert nt.output_names == tuple(FIELDS)
    ref = nt._torch_forward(nt.example_inputs)
    assert {k: list(v.shape[1:]) for k, v in ref.items()} == SHAPES


class _Net(torch.nn.Module):
    def __init__(self, returns):
        super().__init__()
        self.returns = returns

    def forward(self, tokens, mask, *rest, scale=1.0, **extra):
        return self.returns(tokens * scale, mask)


def _source(returns, n_inputs=2, **kw):
    x = np.ones((1, 3), np.float32)
    return ModelSource("net", _Net(returns), (x,) * n_inputs, **kw)


def test_output_structures_and_their_names():
    pair = collections.namedtuple("Pair", "b a")
    cases = [
        (lambda t, m: t, ("output",)),
        (lambda t, m: (t, m), ("output_0", "output_1")),
        (lambda t, m: [t, m, t + m], ("output_0", "output_1", "output_2")),
        (lambda t, m: {"z": t, "a": m}, ("z", "a")),                      # insertion order, not sorted
        (lambda t, m: pair(t, m), ("b", "a")),
        (lambda t, m: {"heads": (t, [m]), "mean": t}, ("heads_0", "heads_1_0", "mean")),
        (lambda t, m: (pair(t, m), t), ("output_0_b", "output_0_a", "output_1")),
    ]
    for returns, names in cases:
        src = _source(returns)
        assert src.input_names == ("tokens", "mask")
        assert src.output_names == names
        assert list(src._torch_forward(src.example_inputs)) == list(names)


def test_given_names_win_and_unnamed_inputs_fall_back():
    src = _source(lambda t, m: {"a": t, "b": m}, input_names=("ids", "attention"), output_names=("p", "q"))
    assert src.input_names == ("ids", "attention") and src.output_names == ("p", "q")
    assert list(src._torch_forward(src.example_inputs)) == ["p", "q"]

    class Star(torch.nn.Module):
        def forward(self, *args):
            return args[0]
    star = ModelSource("star", Star(), (np.ones((1, 2), np.float32),) * 2)
    assert star.input_names == ("input_0", "input_1")
    assert ModelSource("one", Star(), (np.ones((1, 2), np.float32),)).input_names == ("x",)
    # more example inputs than forward names: the defaults, not a mix
    assert _source(lambda t, m: t, n_inputs=3).input_names == ("input_0", "input_1", "input_2")


@pytest.mark.parametrize("returns, kw, message", [
    (lambda t, m: {"class logits": t}, {}, "output name 'class logits' cannot be carried by every format"),
    (lambda t, m: {"état": t}, {}, "start with an ASCII letter"),
    (lambda t, m: {"tensor": t}, {}, "reserved word in CoreML, which would rename it 'tensor_workaround'"),
    (lambda t, m: {1: t}, {}, "dict with the key 1 (int)"),
    (lambda t, m: (t, None), {}, "returned None at 'output_1'"),
    (lambda t, m: {"a": t, "b": 3}, {}, "returned a value of type int at 'b'"),
    (lambda t, m: {}, {}, "returned an empty dict"),
    (lambda t, m: {"a_0": t, "a": [m]}, {}, "two outputs are named 'a_0'"),
    (lambda t, m: t, {"input_names": ("_tokens", "mask")}, "input name '_tokens'"),
    (lambda t, m: t, {"input_names": ("a:0", "mask")}, "TFLite/TF.js signatures refuse"),
    (lambda t, m: t, {"input_names": ("labels", "mask")}, "the --data key for labels"),
    (lambda t, m: {"mask": t}, {}, "'mask' names both an input and an output"),
])
def test_names_no_format_could_carry_are_refused(returns, kw, message):
    with pytest.raises(ModelLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _source(returns, **kw)


def test_a_pt2_program_keeps_its_argument_names(tmp_path):
    user = load_source(DICT_SPEC)
    example = tuple(torch.from_numpy(x) for x in user.example_inputs)
    torch.export.save(torch.export.export(user.module, example), str(tmp_path / "heads.pt2"))
    src = load_source(str(tmp_path / "heads.pt2"))
    assert src.input_names == tuple(INPUTS) and src.output_names == ("logits", "score")
    want, got = user._torch_forward(user.example_inputs), src._torch_forward(src.example_inputs)
    for name in ("logits", "score"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)


def test_onnx_outputs_that_are_not_values_of_their_own(tmp_path):
    """An input returned as is and one tensor returned twice still give one named output each."""
    import onnx
    import onnxruntime as ort

    from edgeport.exporters.torch_to_onnx import torch_to_onnx

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, tokens, mask):
            y = self.lin(tokens)
            return {"same": y, "again": y, "echo": mask}

    src = ModelSource("odd", Odd().eval(), (np.arange(3, dtype=np.float32)[None], np.ones((1, 3), np.float32)))
    path = torch_to_onnx(src.module, src.example_inputs, src.input_names, src.output_names, tmp_path / "odd.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["tokens", "mask"]
    assert [o.name for o in graph.output] == ["same", "again", "echo"]
    sess = ort.InferenceSession(str(path))
    got = dict(zip(["same", "again", "echo"], sess.run(None, src.example_feed())))
    for name, want in src._torch_forward(src.example_inputs).items():
        np.testing.assert_allclose(got[name], want, atol=1e-6)


# --- every target carries them --------------------------------------------------------------------
def test_cli_local_onnx_names_in_report_and_graph(tmp_path):
    import onnx

    t0 = time.perf_counter()
    rc, rep = cli_json("export", DICT_SPEC, "--target", "local-onnx", "--precision", "fp32", "-o", str(tmp_path))
    assert rc == 0, rep["checks"]
    _assert_io(rep["io"], INPUTS, ["logits", "score"])
    _assert_parity(rep["parity"], ["logits", "score"])
    graph = onnx.load(str(tmp_path / "dict_heads-local-onnx" / "model.onnx")).graph
    assert [i.name for i in graph.input] == INPUTS
    assert [o.name for o in graph.output] == ["logits", "score"]
    with np.load(tmp_path / "dict_heads-local-onnx" / "golden.npz") as z:
        assert {"input__image", "input__features"} <= set(z.files)
    assert time.perf_counter() - t0 < 60


def test_cli_refuses_a_key_no_format_can_carry(tmp_path):
    proc = run_cli("export", "tests/data/io_models.py:spaced_key", "--target", "local-onnx", "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, "output name 'class logits' cannot be carried by every format")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def namedtuple_bundles(tmp_path_factory):
    """The namedtuple model through the Python API for ONNX, TFLite and CoreML in one call."""
    out = tmp_path_factory.mktemp("io")
    results = export(TUPLE_SPEC, ["local-onnx", "android-tflite", "ios-coreml"], precision="fp32", out_dir=out)
    return {r.target: r for r in results}


@pytest.mark.parametrize("target", ["local-onnx", "android-tflite", "ios-coreml"])
def test_api_report_names_and_parity(namedtuple_bundles, target):
    res = namedtuple_bundles[target]
    assert res.error is None and res.report.passed, res.report.failed_checks
    rep = json.loads((Path(res.bundle) / "report.json").read_text())
    _assert_io(rep["io"], INPUTS, FIELDS)
    _assert_parity(rep["parity"], FIELDS)


def test_onnx_graph_carries_the_fields(namedtuple_bundles):
    import onnx

    graph = onnx.load(str(Path(namedtuple_bundles["local-onnx"].bundle) / "model.onnx")).graph
    assert [i.name for i in graph.input] == INPUTS and [o.name for o in graph.output] == FIELDS


def test_tflite_signature_carries_the_fields(namedtuple_bundles):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(Path(namedtuple_bundles["android-tflite"].bundle) / "model.tflite"))
    sig = interp.get_signature_list()["serving_default"]
    assert sorted(sig["inputs"]) == sorted(INPUTS) and sorted(sig["outputs"]) == sorted(FIELDS)
    outs = interp.get_signature_runner("serving_default").get_output_details()
    assert {n: list(d["shape"][1:]) for n, d in outs.items()} == SHAPES  # each name on its own tensor


def test_coreml_spec_carries_the_fields(namedtuple_bundles):
    from edgeport.exporters._coreml_convert import import_coremltools

    spec = import_coremltools().utils.load_spec(str(Path(namedtuple_bundles["ios-coreml"].bundle) / "model.mlpackage"))
    assert [i.name for i in spec.description.input] == INPUTS
    assert [o.name for o in spec.description.output] == FIELDS


class _ArgNamedLikeASubmodule(nn.Module):
    """``forward(self, signal, meta)`` beside ``self.meta``: torch's ONNX decomposition resolved
    ``meta.weight`` against the input and failed ("references nonexistent attribute weight of
    meta") until edgeport handed such modules their inputs positionally."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.meta = nn.Linear(4, 3)
        self.signal_proj = nn.Linear(6, 3)

    def forward(self, signal, meta):
        return self.signal_proj(signal) * torch.tanh(self.meta(meta))


def test_an_argument_named_like_a_submodule_exports_with_its_name(tmp_path):
    import onnx
    import onnxruntime as ort

    from edgeport.exporters.torch_to_onnx import torch_to_onnx

    m = _ArgNamedLikeASubmodule().eval()
    rng = np.random.default_rng(0)
    signal, meta = rng.standard_normal((1, 6)).astype(np.float32), rng.standard_normal((1, 4)).astype(np.float32)
    path = torch_to_onnx(m, (signal, meta), ("signal", "meta"), ("y",), tmp_path / "m.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["signal", "meta"] and [o.name for o in graph.output] == ["y"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"signal": signal, "meta": meta})[0]
    with torch.no_grad():
        want = m(torch.from_numpy(signal), torch.from_numpy(meta)).numpy()
    assert np.abs(got - want).max() < 1e-6
