"""Property-based checks of the readers of untrusted data: profiles and --data files. Whatever
they are handed, they answer with a result or one of edgeport's named errors — never another
exception."""
from __future__ import annotations

import io
import tomllib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.data import check_against, load_npz
from edgeport.errors import EdgeportError
from edgeport.targets.profile import parse_profile

BASE = tomllib.loads((Path(__file__).resolve().parents[1] / "edgeport/targets/profiles/android-tflite.toml").read_text())
KEYS = sorted(set(BASE) | {"sparsity", "pruning_scope", "compression", "tolerances", "budgets", "extra_runtimes"})
SUBKEYS = ["threads", "warmup", "runs", "max_artifact_bytes", "max_p50_ms", "name", "min_api_level", "int8_io",
           "calibration_samples", "timeout_s", "int8_guard", "cosine_min", "accuracy_drop_max", "kind", "sparsity",
           "scope", "fp32", "int8", "bogus"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["fp32", "int8", "litert", "tflite", "onnx", "magnitude", "layer"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(SUBKEYS), children, max_size=4),
    max_leaves=12)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6), st.lists(st.sampled_from(KEYS), max_size=3))
def test_profile_mutations_raise_only_named_errors(changes, drop):
    data = {k: v for k, v in BASE.items() if k not in drop}
    data.update(changes)
    try:
        parse_profile(data, "fuzz")
    except EdgeportError:
        pass


dtypes = st.sampled_from(["float32", "float16", "float64", ">f4", "int64", "int8", "uint8", "bool", "complex64", "U3"])
arrays = st.builds(lambda shape, dt: np.zeros(shape, dtype=dt),
                   st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple), dtypes)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["x", "y", "labels", "input__x", "other"]), arrays, max_size=3))
def test_npz_files_raise_only_named_errors(tmp_path, content):
    path = tmp_path / "d.npz"
    np.savez(path, **content)
    try:
        ds = load_npz(path, ["x"])
        check_against(ds, [("x", (1, 2, 3), "float32")])
    except EdgeportError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_data_raise_only_named_errors(tmp_path, blob):
    path = tmp_path / "d.npz"
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 3), np.float32))
    good = buf.getvalue()
    # either raw bytes or a real npz with a stretch overwritten
    data = blob if len(blob) % 2 else good[:40] + blob + good[40 + len(blob):]
    path.write_bytes(data)
    try:
        load_npz(path, ["x"])
    except EdgeportError:
        pass


def test_named_messages_for_common_mistakes(tmp_path):
    import pytest

    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "a.npy").rename(tmp_path / "renamed.npz")
    with pytest.raises(EdgeportError, match="is a single .npy array"):
        load_npz(tmp_path / "renamed.npz", ["x"])
    (tmp_path / "t.npz").write_text("x = 1, 2, 3")
    with pytest.raises(EdgeportError, match="not an .npz file"):
        load_npz(tmp_path / "t.npz", ["x"])
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EdgeportError, match="holds Python objects"):
        load_npz(tmp_path / "o.npz", ["x"])
    np.savez(tmp_path / "z.npz", x=np.zeros((0, 3), np.float32))
    with pytest.raises(EdgeportError, match="has no samples"):
        load_npz(tmp_path / "z.npz", ["x"])
    np.savez(tmp_path / "s.npz", x=np.float32(3))
    with pytest.raises(EdgeportError, match="single value"):
        load_npz(tmp_path / "s.npz", ["x"])
    np.savez(tmp_path / "be.npz", x=np.ones((2, 3), ">f4"))
    assert load_npz(tmp_path / "be.npz", ["x"]).inputs["x"].dtype == np.float32
    np.savez(tmp_path / "nan.npz", x=np.full((2, 1, 2, 3), np.nan, np.float32))
    with pytest.raises(EdgeportError, match="NaN or infinity"):
        check_against(load_npz(tmp_path / "nan.npz", ["x"]), [("x", (1, 1, 2, 3), "float32")])
