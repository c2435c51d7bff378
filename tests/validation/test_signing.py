"""Signing bundles with a local Ed25519 key, verifying offline: every way a signed bundle can be
changed, re-signed by someone else or left unsigned gives its own one-line reason."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from edgeport.errors import ConfigError, ModelLoadError
from edgeport.validation import bundle as B
from edgeport.validation.signing import (SignatureError, generate_keypair, sign_bundle,
                                         verify_bundle_signature)
from test_bundle_confinement import make_bundle


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    generate_keypair(d / "release.key", d / "release.pub")
    generate_keypair(d / "other.key", d / "other.pub")
    return d


@pytest.fixture()
def signed(tmp_path, keys) -> Path:
    b = make_bundle(tmp_path / "bundle")
    sign_bundle(b, keys / "release.key")
    return b


def _verify(b: Path, keys: Path, name: str = "release.pub"):
    return verify_bundle_signature(b, keys / name, B.check_integrity(b).manifest_bytes)


def _rewrite_manifest(b: Path, edit) -> None:
    """What a tamperer does: edit the manifest, then re-hash every file into it."""
    meta = json.loads((b / "manifest.json").read_text())
    meta.pop("files")
    edit(meta)
    B.write_manifest(b, meta)


def test_generated_keys_are_pem_files_and_the_private_one_is_0600(keys):
    assert stat.S_IMODE(os.stat(keys / "release.key").st_mode) == 0o600
    assert (keys / "release.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (keys / "release.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_keypair(keys / "release.key", keys / "new.pub")
    assert not (keys / "new.pub").exists()


def test_sign_then_verify(signed, keys):
    assert (signed / "signature.json").is_file()
    result = B.check_integrity(signed)
    assert result.ok, result.problems  # the signature is not an "unlisted file"
    check = _verify(signed, keys)
    assert check.ok and check.key_id.startswith("sha256:") and "signed by" in check.reason
    check.raise_if_failed()
    assert verify_bundle_signature(signed, keys / "release.pub").ok  # reads the manifest itself
    assert sorted(os.listdir(signed.parent)) == ["bundle"]  # nothing stray beside it


@pytest.mark.parametrize("victim", ["model.onnx", "golden.npz", "report.json"])
def test_a_changed_byte_in_any_file_fails_validation_naming_it(signed, keys, victim):
    data = bytearray((signed / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (signed / victim).write_bytes(data)
    result = B.check_integrity(signed)
    assert result.problems == (f"{victim} changed (sha256 differs from the manifest)",)
    assert _verify(signed, keys).ok  # the manifest is as signed: integrity is what catches it


def test_a_changed_byte_in_the_manifest_fails_the_signature(signed, keys):
    raw = (signed / "manifest.json").read_bytes()
    (signed / "manifest.json").write_bytes(raw.replace(b'"int8"', b'"fp32"', 1))
    check = _verify(signed, keys)
    assert not check.ok and check.reason == "manifest.json changed after signing: plan differs from what was signed"


def test_loosened_tolerances_rehashed_fail_the_signature(signed, keys):
    _rewrite_manifest(signed, lambda m: m["plan"]["tolerance"].update(cosine_min=0.5))
    assert B.check_integrity(signed).ok  # consistent by itself...
    check = _verify(signed, keys)  # ...but not what was signed
    assert not check.ok
    assert check.reason == "manifest.json changed after signing: plan differs from what was signed"
    with pytest.raises(SignatureError, match="plan differs"):
        check.raise_if_failed()


def test_an_edited_file_with_a_rehashed_manifest_fails_the_signature(signed, keys):
    (signed / "model.onnx").write_bytes(b"a different model")
    _rewrite_manifest(signed, lambda m: None)
    assert B.check_integrity(signed).ok
    check = _verify(signed, keys)
    assert not check.ok and check.reason == "manifest.json was re-hashed after signing: model.onnx changed"


def test_an_added_file_with_a_rehashed_manifest_fails_the_signature(signed, keys):
    (signed / "extra.bin").write_bytes(b"payload")
    _rewrite_manifest(signed, lambda m: None)
    assert _verify(signed, keys).reason == "manifest.json was re-hashed after signing: extra.bin added"


def test_reformatting_the_manifest_fails_the_signature(signed, keys):
    m = json.loads((signed / "manifest.json").read_text())
    (signed / "manifest.json").write_text(json.dumps(m))
    check = _verify(signed, keys)
    assert not check.ok and "(its bytes; same content as signed)" in check.reason


def test_unsigned_fails(tmp_path, keys):
    b = make_bundle(tmp_path / "b")
    check = _verify(b, keys)
    assert not check.ok and check.reason.startswith("unsigned:") and "signature.json" in check.reason


def test_the_wrong_public_key_fails(signed, keys):
    check = _verify(signed, keys, "other.pub")
    assert not check.ok and check.reason.startswith("signed by another key (sha256:")
    assert "not by other.pub" in check.reason


def test_resigned_by_another_key_fails_for_the_release_key(signed, keys):
    _rewrite_manifest(signed, lambda m: m["plan"]["tolerance"].update(cosine_min=0.5))
    sign_bundle(signed, keys / "other.key")
    assert _verify(signed, keys, "other.pub").ok
    assert _verify(signed, keys).reason.startswith("signed by another key")


def test_a_forged_signature_fails(signed, keys):
    doc = json.loads((signed / "signature.json").read_text())
    doc["statement"]["manifest"]["sha256"] = "0" * 64
    (signed / "signature.json").write_text(json.dumps(doc))
    check = _verify(signed, keys)
    assert not check.ok and "does not verify with release.pub" in check.reason


@pytest.mark.parametrize("content", ["", "{}", "[]", '{"format": "edgeport-bundle-signature/1"}', "\xff"])
def test_a_malformed_signature_file_is_named(signed, keys, content):
    (signed / "signature.json").write_bytes(content.encode("latin-1"))
    check = _verify(signed, keys)
    assert not check.ok and check.reason.startswith("signature.json is malformed:")


def test_a_symlinked_signature_is_not_followed(signed, keys, tmp_path):
    shutil.move(signed / "signature.json", tmp_path / "sig.json")
    os.symlink(tmp_path / "sig.json", signed / "signature.json")
    assert not _verify(signed, keys).ok
    assert "signature.json is a symbolic link (not followed)" in B.check_integrity(signed).problems


def test_a_bundle_that_fails_integrity_is_not_signed(tmp_path, keys):
    b = make_bundle(tmp_path / "b")
    (b / "report.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="refusing to sign.*report.json changed"):
        sign_bundle(b, keys / "release.key")
    assert not (b / "signature.json").exists()


def test_unusable_key_files_are_config_errors(signed, keys, tmp_path):
    with pytest.raises(ConfigError, match="private key"):
        verify_bundle_signature(signed, keys / "release.key")
    with pytest.raises(ConfigError, match="cannot read key"):
        verify_bundle_signature(signed, tmp_path / "missing.pub")
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ConfigError, match="not a readable private key"):
        sign_bundle(signed, tmp_path / "junk.key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    rsa_like = ec.generate_private_key(ec.SECP256R1())  # a real key, of the wrong kind
    (tmp_path / "ec.key").write_bytes(rsa_like.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not an Ed25519 private key"):
        sign_bundle(signed, tmp_path / "ec.key")


def test_openssh_ed25519_keys_work(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "id").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                    serialization.NoEncryption()))
    (tmp_path / "id.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                    serialization.PublicFormat.OpenSSH))
    b = make_bundle(tmp_path / "b")
    sign_bundle(b, tmp_path / "id")
    assert verify_bundle_signature(b, tmp_path / "id.pub").ok


def test_a_real_export_signs_and_verifies(digits, tmp_path, keys):
    from edgeport import export

    (res,) = export(digits, ["local-onnx"], precision="fp32", out_dir=tmp_path / "out")
    sign_bundle(res.bundle, keys / "release.key")
    integrity = B.check_integrity(res.bundle)
    assert integrity.ok and verify_bundle_signature(res.bundle, keys / "release.pub", integrity.manifest_bytes).ok
    data = bytearray((res.bundle / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (res.bundle / "model.onnx").write_bytes(data)
    _rewrite_manifest(res.bundle, lambda m: None)
    assert _verify(res.bundle, keys).reason == "manifest.json was re-hashed after signing: model.onnx changed"
