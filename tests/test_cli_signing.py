"""Signing from the command line: keygen, sign, validate --verify; an edited and re-hashed
manifest is caught by the signature, not only by the hashes."""
from __future__ import annotations

import json

import null_format
from edgeport.cli import main


def _bundle_and_keys(tmp_path):
    """A fresh null-format bundle and a new key pair."""
    null_format.register()
    profile = tmp_path / "null-target.toml"
    profile.write_text(null_format.PROFILE)
    out = tmp_path / "out"
    assert main(["export", "tests/null_format.py:factory", "--target", str(profile), "-o", str(out), "-q"]) == 0
    priv, pub = tmp_path / "k", tmp_path / "k.pub"
    assert main(["keygen", str(priv), str(pub)]) == 0
    return out / "tiny-null-target", priv, pub


def test_sign_then_verify_then_tamper(tmp_path, capsys):
    bundle, priv, pub = _bundle_and_keys(tmp_path)
    assert main(["sign", str(bundle), "--key", str(priv)]) == 0
    capsys.readouterr()
    assert main(["validate", str(bundle), "--verify", str(pub), "--json", "-q"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in rep["checks"]][:2] == ["integrity", "signature"] and rep["passed"]

    # loosen the tolerance in the manifest's plan and re-hash nothing else: the hashes still
    # match every file, only the signature can tell
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["plan"]["tolerance"]["cosine_min"] = 0.0
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert main(["validate", str(bundle), "--json", "-q"]) == 0  # unsigned checks cannot see it
    capsys.readouterr()
    assert main(["validate", str(bundle), "--verify", str(pub), "--json", "-q"]) == 1
    rep = json.loads(capsys.readouterr().out)
    sig = next(c for c in rep["checks"] if c["name"] == "signature")
    assert not sig["passed"] and "manifest.json changed after signing" in sig["detail"]


def test_verify_of_an_unsigned_bundle_fails(tmp_path, capsys):
    bundle, _, pub = _bundle_and_keys(tmp_path)
    capsys.readouterr()
    assert main(["validate", str(bundle), "--verify", str(pub), "-q"]) == 1
    assert "unsigned" in capsys.readouterr().out
    # a key file that is not there is an input error
    assert main(["validate", str(bundle), "--verify", str(tmp_path / "missing.pub")]) == 2
