"""Model files are data: a .pt2 that would run code when unpickled is refused before torch reads
it; a plain one loads and exports. A factory that calls sys.exit cannot decide the exit code."""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, cli_json, run_cli
from edgeport.errors import ModelLoadError
from edgeport.source_specs import load_source


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(6, 8)
        self.b = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    path = tmp_path_factory.mktemp("pt2") / "tiny.pt2"
    ep = torch.export.export(_Tiny().eval(), (torch.randn(1, 6),))
    torch.export.save(ep, str(path))
    return path


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _rewrite(src, dst, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            zout.writestr(info, data)


def test_a_pt2_that_would_run_code_is_refused(pt2, tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Payload(str(marker)))

    def sample_inputs(name: str, data: bytes) -> bytes:
        if not name.endswith("sample_inputs/model.pt"):
            return data
        buf = io.BytesIO()
        torch.save(_Payload(str(marker)), buf)  # a torch.save file whose pickle calls os.system
        return buf.getvalue()

    bad = tmp_path / "bad_inputs.pt2"
    _rewrite(pt2, bad, sample_inputs)
    with pytest.raises(ModelLoadError, match="could run code when loaded; refused"):
        load_source(str(bad))

    def pickled_weight(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            doc = json.loads(data)
            first = next(iter(doc["config"]))
            doc["config"][first]["use_pickle"] = True
            return json.dumps(doc).encode()
        if name.endswith("data/weights/weight_0"):
            return evil
        return data

    bad2 = tmp_path / "bad_weight.pt2"
    _rewrite(pt2, bad2, pickled_weight)
    proc = run_cli("export", str(bad2), "--target", "local-onnx", "-o", str(tmp_path / "out"))
    assert_one_line_error(proc, "is stored as a pickled object, which could run code")
    assert not marker.exists() and not (tmp_path / "out").exists()
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    assert_one_line_error(run_cli("export", str(tmp_path / "junk.pt2"), "--target", "local-onnx"), "not a zip")


def test_a_plain_pt2_exports_and_matches_torch(pt2, tmp_path):
    src = load_source(str(pt2))
    assert src.input_names == ("x",) and src.example_inputs[0].shape == (1, 6)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32))
    rc, rep = cli_json("export", str(pt2), "--target", "local-onnx", "--precision", "fp32", "--data", str(data),
                       "-o", str(tmp_path / "out"))
    assert rc == 0, rep["checks"]
    assert rep["parity"]["samples"] == 40 and rep["parity"]["outputs"][0]["max_abs"] < 1e-5


@pytest.mark.parametrize("code, needle", [("0", "sys.exit(0)"), ("7", "sys.exit(7)")])
def test_a_factory_calling_sys_exit_is_exit_2(tmp_path, code, needle):
    f = tmp_path / "quits.py"
    f.write_text(f"import sys\n\ndef make():\n    sys.exit({code})\n")
    out = tmp_path / "out"
    assert_one_line_error(run_cli("export", f"{f}:make", "--target", "local-onnx", "-o", str(out)), needle)
    assert not out.exists()


def test_a_model_that_never_ends_is_stopped_by_the_timeout(tmp_path):
    """An ONNX Loop with an enormous trip count: `run` gives up after --timeout, naming why."""
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "spin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2 ** 62]), helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, str(tmp_path / "spin.onnx"))
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 1), np.float32))
    proc = run_cli("run", str(tmp_path / "spin.onnx"), "--data", str(tmp_path / "x.npz"), "--timeout", "3", timeout=120)
    assert_one_line_error(proc, "onnxruntime did not finish within 3 s")
