"""Re-checking a bundle stays inside it: manifest paths, symlinks, the manifest's own size and shape,
and the integrity verdict that lets validation stop before it parses anything."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edgeport.data import Dataset
from edgeport.errors import ModelLoadError
from edgeport.validation import bundle as B
from edgeport.validation import golden as G


def make_bundle(root: Path, model_bytes: bytes = b"") -> Path:
    """A bundle as an export writes it, made with the bundle module's own writers: golden I/O,
    an artifact file, a report and the manifest (with a plan carrying tolerances)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    G.write_golden(root / B.GOLDEN, Dataset({"x": x}, np.arange(16) % 10, "test"),
                   {"logits": rng.standard_normal((16, 10)).astype(np.float32)}, None)
    (root / "model.onnx").write_bytes(model_bytes or rng.bytes(50_000))
    (root / B.REPORT).write_text(json.dumps({"passed": True, "checks": []}))
    B.write_manifest(root, {
        "edgeport_version": "test", "model": "digits_cnn", "target": "local-onnx",
        "source": {"digest": "sha256:" + "0" * 64, "task": "classification", "outputs": ["logits"]},
        "plan": {"target": "local-onnx", "precision": "int8",
                 "tolerance": {"cosine_min": 0.98, "top1_agreement_min": 0.95}},
        "artifact": {"format": "onnx", "entry": "model.onnx", "precision": "int8", "files": ["model.onnx"]},
    })
    return root


@pytest.fixture()
def copy(tmp_path) -> Path:
    return make_bundle(tmp_path / "bundle")


def _manifest(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def _write(b: Path, m: dict) -> None:
    (b / "manifest.json").write_text(json.dumps(m, indent=2))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_real_bundle_is_intact(copy):
    result = B.check_integrity(copy)
    assert result.ok and result.problems == ()
    assert result.manifest["files"] and result.manifest_bytes == (copy / "manifest.json").read_bytes()
    assert B.verify_files(copy, B.read_manifest(copy)) == []
    assert "match their sha256" in result.detail()


@pytest.mark.parametrize("bad", ["../outside.bin", "/ABS/outside.bin", "sub/../../outside.bin",
                                 "./report.json", "a//b", "", "sub/", "a\\b", "manifest.json",
                                 "signature.json"])
def test_a_manifest_path_outside_or_unnormalised_is_refused(copy, bad):
    outside = copy.parent / "outside.bin"
    outside.write_bytes(b"secret outside the bundle")
    path = bad.replace("/ABS", str(copy.parent))
    m = _manifest(copy)
    m["files"].append({"path": path, "sha256": _sha(outside), "bytes": outside.stat().st_size})
    _write(copy, m)
    with pytest.raises(ModelLoadError) as exc:
        B.read_manifest(copy)
    msg = str(exc.value)
    assert "\n" not in msg and "manifest.json" in msg and "files[3].path" in msg
    with pytest.raises(ModelLoadError):
        B.check_integrity(copy)


def test_whether_an_outside_file_exists_is_not_revealed(copy):
    (copy.parent / "exists.bin").write_bytes(b"x")
    messages = []
    for name in ("exists.bin", "does-not-exist.bin"):
        m = _manifest(copy)
        m["files"] = m["files"][:3] + [{"path": f"../{name}", "sha256": "0" * 64, "bytes": 1}]
        _write(copy, m)
        with pytest.raises(ModelLoadError) as exc:
            B.read_manifest(copy)
        messages.append(str(exc.value).replace(name, "NAME"))
    assert messages[0] == messages[1]


def test_the_artifact_entry_must_be_a_listed_file_inside(copy):
    m = _manifest(copy)
    m["artifact"]["entry"] = "../model.onnx"
    _write(copy, m)
    with pytest.raises(ModelLoadError, match="artifact.entry"):
        B.read_manifest(copy)
    m["artifact"]["entry"], m["artifact"]["files"] = "model.onnx", ["model.onnx", "extra.bin"]
    _write(copy, m)
    with pytest.raises(ModelLoadError, match="extra.bin"):
        B.read_manifest(copy)


def test_a_symlinked_file_is_a_problem_even_with_the_right_hash(copy):
    target = copy.parent / "model-elsewhere.onnx"
    shutil.move(copy / "model.onnx", target)
    os.symlink(target, copy / "model.onnx")  # same bytes, same sha256: only the link is wrong
    problems = B.check_integrity(copy).problems
    assert any("model.onnx is a symbolic link" in p for p in problems), problems


def test_a_symlink_to_a_system_file_is_named_not_followed(copy):
    passwd = Path("/etc/passwd")
    m = _manifest(copy)
    m["files"].append({"path": "passwd", "sha256": _sha(passwd), "bytes": passwd.stat().st_size})
    _write(copy, m)
    os.symlink(passwd, copy / "passwd")
    problems = B.check_integrity(copy).problems
    assert problems == ("passwd is a symbolic link (not followed)",)


def test_a_symlink_is_never_opened(copy):
    fifo = copy.parent / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    os.symlink(fifo, copy / "model.onnx.data")
    m = _manifest(copy)
    m["files"].append({"path": "model.onnx.data", "sha256": "0" * 64, "bytes": 0})
    _write(copy, m)
    out: list = []
    t = threading.Thread(target=lambda: out.append(B.check_integrity(copy)), daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # unblock the reader so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("check_integrity opened a symlink's target")
    assert "model.onnx.data is a symbolic link (not followed)" in out[0].problems


def test_a_symlinked_folder_is_a_problem_and_not_entered(copy):
    outside = copy.parent / "elsewhere"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"weights")
    os.symlink(outside, copy / "weights")
    m = _manifest(copy)
    m["files"].append({"path": "weights/w.bin", "sha256": _sha(outside / "w.bin"), "bytes": 7})
    _write(copy, m)
    problems = set(B.check_integrity(copy).problems)
    assert problems == {"weights is a symbolic link (not followed)", "weights/w.bin is missing"}


def test_a_fifo_inside_is_not_a_regular_file(copy):
    os.mkfifo(copy / "pipe")
    problems = B.check_integrity(copy).problems
    assert problems == ("pipe is not a regular file",)


def test_an_oversized_manifest_is_refused_before_parsing(copy):
    m = _manifest(copy)
    m["padding"] = "x" * (B.MANIFEST_MAX_BYTES + 1)
    _write(copy, m)
    with pytest.raises(ModelLoadError, match="larger than"):
        B.read_manifest(copy)


def test_a_symlinked_manifest_is_refused(copy, tmp_path):
    shutil.move(copy / "manifest.json", tmp_path / "m.json")
    os.symlink(tmp_path / "m.json", copy / "manifest.json")
    with pytest.raises(ModelLoadError, match="symbolic link"):
        B.read_manifest(copy)


@pytest.mark.parametrize("mutate, needle", [
    (lambda m: m.update(files={"a": 1}), "files must be a list"),
    (lambda m: m.pop("files"), "files must be a list"),
    (lambda m: m["files"].append("report.json"), "files[3] must be an object"),
    (lambda m: m["files"][0].pop("sha256"), "files[0] lacks sha256"),
    (lambda m: m["files"][0].update(sha256="XYZ"), "files[0].sha256"),
    (lambda m: m["files"][0].update(sha256="A" * 64), "files[0].sha256"),
    (lambda m: m["files"][0].update(bytes=-1), "files[0].bytes"),
    (lambda m: m["files"][0].update(bytes=True), "files[0].bytes"),
    (lambda m: m["files"][0].update(bytes=1.5), "files[0].bytes"),
    (lambda m: m["files"][0].update(path=7), "files[0].path"),
    (lambda m: m["files"][0].pop("bytes"), "files[0] lacks bytes"),
    (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
])
def test_a_malformed_manifest_is_one_clear_error(copy, mutate, needle):
    m = _manifest(copy)
    mutate(m)
    _write(copy, m)
    with pytest.raises(ModelLoadError) as exc:
        B.read_manifest(copy)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", "\xff\xfe", '{"files": []} trailing'])
def test_a_manifest_that_is_not_a_json_object_is_refused(copy, text):
    (copy / "manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelLoadError, match="manifest.json"):
        B.read_manifest(copy)


def test_a_size_mismatch_is_reported_without_hashing(copy):
    with open(copy / "golden.npz", "r+b") as f:  # 64 GiB sparse: hashing it would take minutes
        f.truncate(64 << 30)
    t0 = time.monotonic()
    problems = B.check_integrity(copy).problems
    assert time.monotonic() - t0 < 10
    assert len(problems) == 1 and problems[0].startswith("golden.npz changed: 68719476736 bytes, the manifest says ")


def test_hashing_streams(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)
    tracemalloc.start()
    try:
        digest = B.sha256_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(bytes(256 << 20)).hexdigest()
    assert peak < 8 << 20


def test_changed_missing_and_unlisted_files_are_named(copy):
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 1
    (copy / "model.onnx").write_bytes(data)
    (copy / "report.json").unlink()
    (copy / "notes.txt").write_text("hi")
    (copy / "signature.json").write_text("{}")  # the signature is never listed: not "unlisted"
    (copy / "sub").mkdir()
    (copy / "sub" / "signature.json").write_text("{}")  # ...but only at the top
    result = B.check_integrity(copy)
    assert not result.ok
    assert set(result.problems) == {"model.onnx changed (sha256 differs from the manifest)",
                                    "report.json is missing", "notes.txt is not listed in the manifest",
                                    "sub/signature.json is not listed in the manifest"}
    assert "model.onnx changed" in result.detail()


def test_integrity_fails_before_golden_is_parsed(copy):
    # a replaced golden.npz of the same size that is not even a zip: integrity says so, and
    # nothing had to read it as an npz to find out
    size = (copy / "golden.npz").stat().st_size
    (copy / "golden.npz").write_bytes(b"\0" * size)
    result = B.check_integrity(copy)
    assert result.problems == ("golden.npz changed (sha256 differs from the manifest)",)


def test_write_manifest_refuses_a_symlink(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.bin").write_bytes(b"a")
    os.symlink("/etc/passwd", tmp_path / "b" / "p")
    with pytest.raises(Exception, match="symbolic link") as exc:
        B.write_manifest(tmp_path / "b", {})
    from edgeport.errors import EdgeportError

    assert isinstance(exc.value, EdgeportError)
