"""golden.npz is read bounded and strictly: declared sizes checked before anything is
decompressed or allocated, numbers only, every reference present, one sample count."""
from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeport.data import Dataset
from edgeport.errors import ModelLoadError
from edgeport.validation.golden import Golden, read_golden, write_golden


def _golden(path: Path, n: int = 12, conv: bool = False) -> Path:
    rng = np.random.default_rng(1)
    ref = {"logits": rng.standard_normal((n, 10)).astype(np.float32)}
    write_golden(path, Dataset({"x": rng.standard_normal((n, 1, 8, 8)).astype(np.float32),
                                "ids": rng.integers(0, 99, (n, 7))}, np.arange(n) % 10, "t"),
                 ref, {"logits": ref["logits"] + 1} if conv else None)
    return path


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def test_round_trip(tmp_path):
    g = read_golden(_golden(tmp_path / "golden.npz", conv=True), ["logits"])
    assert isinstance(g, Golden) and len(g.data) == 12 and set(g.data.inputs) == {"x", "ids"}
    assert g.data.inputs["x"].shape == (12, 1, 8, 8) and g.data.inputs["ids"].dtype == np.int64
    assert g.data.labels.tolist() == [i % 10 for i in range(12)]
    np.testing.assert_array_equal(g.converted_reference["logits"], g.reference["logits"] + 1)
    g.data.inputs["x"][0] = 0  # arrays are ordinary writable arrays
    assert read_golden(_golden(tmp_path / "g2.npz"), ["logits"]).converted_reference is None


def test_declared_size_over_the_limit_is_refused_unread(tmp_path):
    path = _golden(tmp_path / "golden.npz")
    with pytest.raises(ModelLoadError, match="over the 4096-byte limit"):
        read_golden(path, ["logits"], max_bytes=4096)


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    # a valid .npy header for 4e12 float32s (16 TB) followed by 8 bytes: np.load would try to
    # allocate the whole array before noticing the data is not there
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (2_000_000, 2_000_000)})
    member = b"\x93NUMPY\x01\x00" + buf.getvalue()[8:] + bytes(8)
    path = tmp_path / "golden.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("input__x.npy", member)
        z.writestr("reference__logits.npy", member)
    with pytest.raises(ModelLoadError, match="header claims shape"):
        read_golden(path, ["logits"])


def test_a_zip_that_lies_about_its_sizes_is_malformed(tmp_path):
    path = _golden(tmp_path / "golden.npz")
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")  # last central-directory entry: shrink its uncompressed size
    size = struct.unpack_from("<I", data, cd + 24)[0]
    struct.pack_into("<I", data, cd + 24, size // 2)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        read_golden(path, ["logits"])


@pytest.mark.parametrize("arrays, needle", [
    (dict(input__x=np.array(1.0, np.float32), reference__logits=np.zeros((1, 2), np.float32)), "0-d"),
    (dict(input__x=np.zeros((2, 3), np.float32)), "lacks reference__logits"),
    (dict(reference__logits=np.zeros((2, 3), np.float32)), "no input__"),
    (dict(input__x=np.array([{"a": 1}, None], dtype=object), reference__logits=np.zeros((2, 3))), "dtype object"),
    (dict(input__x=np.array(["ab", "cd"]), reference__logits=np.zeros((2, 3))), "numbers only"),
    (dict(input__x=np.zeros((2, 3)), reference__logits=np.zeros((3, 3))), "disagree on the number of samples"),
    (dict(input__x=np.zeros((2, 3)), reference__logits=np.zeros((2, 3)), labels=np.zeros(5)), "labels 5"),
])
def test_malformed_golden_is_one_clear_error(tmp_path, arrays, needle):
    path = tmp_path / "golden.npz"
    np.savez(path, **arrays)  # savez pickles object arrays: what an attacker would ship
    with pytest.raises(ModelLoadError) as exc:
        read_golden(path, ["logits"])
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04" + bytes(40)])
def test_not_an_npz_is_malformed(tmp_path, content):
    path = tmp_path / "golden.npz"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="golden.npz"):
        read_golden(path, ["logits"])


def test_a_truncated_npz_is_malformed(tmp_path):
    path = _golden(tmp_path / "golden.npz", n=300)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ModelLoadError, match="golden.npz"):
        read_golden(path, ["logits"])


def test_a_corrupted_member_fails_its_crc(tmp_path):
    path = tmp_path / "golden.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # stored: flip a data byte in place
        for k, v in {"input__x": np.arange(64, dtype=np.float32).reshape(8, 8),
                     "reference__logits": np.zeros((8, 2), np.float32)}.items():
            b = io.BytesIO()
            np.save(b, v)
            z.writestr(k + ".npy", b.getvalue())
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="golden.npz is malformed"):
        read_golden(path, ["logits"])


def test_a_symlinked_golden_is_refused(tmp_path):
    real = _golden(tmp_path / "real.npz")
    os.symlink(real, tmp_path / "golden.npz")
    with pytest.raises(ModelLoadError, match="golden.npz"):
        read_golden(tmp_path / "golden.npz", ["logits"])


def test_a_member_that_is_not_an_array_is_refused(tmp_path):
    path = _golden(tmp_path / "golden.npz")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a .npy array"):
        read_golden(path, ["logits"])
