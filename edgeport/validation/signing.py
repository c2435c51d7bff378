"""Signing bundles: an Ed25519 signature that anchors trust in a bundle, offline, with a local key.

The manifest hashes every file of the bundle; the signature covers the exact bytes of
manifest.json (their sha256), so a verified signature plus a clean integrity check
(:func:`edgeport.validation.bundle.check_integrity`) proves every byte is as signed.

``signature.json`` sits at the top of the bundle and is the one file the manifest never lists.
It carries the signed *statement* -- the manifest's sha256 and size, each listed file's sha256,
a digest of each top-level manifest section -- and the signature over it, so a failure can say
what changed: the file hashes (a manifest re-hashed after a file was edited), a section such as
the plan (tolerances loosened), or only the bytes.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..bounded_read import read_at_most
from ..errors import ConfigError, EdgeportError, MissingDependencyError, ModelLoadError, one_line
from .bundle import MANIFEST_MAX_BYTES, check_integrity, read_inside
from .manifest import MANIFEST, SIGNATURE, parse_manifest

FORMAT = "edgeport-bundle-signature/1"
ALGORITHM = "ed25519"
_KEY_MAX_BYTES = 64 * 1024
_SIGNATURE_MAX_BYTES = MANIFEST_MAX_BYTES + (1 << 20)


class SignatureError(EdgeportError):
    """A bundle's signature is missing or does not prove its manifest (a failed check: exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on a bundle's signature: ``reason`` is one line, whether ``ok`` or not."""

    ok: bool
    reason: str
    key_id: str | None = None
    signed_at: str | None = None

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise SignatureError(self.reason)


# ------------------------------------------------------------------------------------------------
# Keys

def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependencyError("cryptography", hint="pip install cryptography (bundle signing)") from None
    return serialization, ed25519


def key_id(public_key: Any) -> str:
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key."""
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def generate_keypair(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair as PEM files: the private key (PKCS#8, unencrypted, mode 0600)
    and the public key (SubjectPublicKeyInfo). Existing files are never overwritten. Returns the
    key id."""
    serialization, ed25519 = _crypto()
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if os.path.lexists(p):
            raise ConfigError(f"{p} already exists: refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        os.unlink(private_path)
        raise
    return key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists: refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {one_line(exc)}") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # exactly this mode, whatever the umask
        f.write(data)


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = read_at_most(f, _KEY_MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read key {path}: {one_line(exc)}") from None
    if data is None:
        raise ConfigError(f"{path} is too large to be a key file")
    return data


def load_private_key(path: str | Path, password: bytes | None = None) -> Any:
    """An Ed25519 private key from a PEM (PKCS#8) or OpenSSH key file."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    data = _read_key_file(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key = serialization.load_ssh_private_key(data, password)
        else:
            key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise ConfigError(f"{path}: {one_line(exc)}") from None
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(f"{path} is not a readable private key (PEM or OpenSSH): {one_line(exc)}") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and kin
        raise ConfigError(f"{path} is not a usable private key: {one_line(exc)}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key ({type(key).__name__})")
    return key


def load_public_key(path: str | Path) -> Any:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) or OpenSSH ``ssh-ed25519`` file."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    data = _read_key_file(path)
    try:
        if data.lstrip().startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except Exception as exc:  # ValueError, UnsupportedAlgorithm...
        hint = " (that is a private key: pass the public one)" if b"PRIVATE KEY" in data else ""
        raise ConfigError(f"{path} is not a readable public key{hint}: {one_line(exc)}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key ({type(key).__name__})")
    return key


# ------------------------------------------------------------------------------------------------
# The statement a signature covers

def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _message(statement: dict[str, Any]) -> bytes:
    return FORMAT.encode() + b"\n" + _canonical(statement)


def _statement(manifest_bytes: bytes, manifest: dict[str, Any], kid: str) -> dict[str, Any]:
    return {
        "manifest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest(), "bytes": len(manifest_bytes)},
        "files": {e["path"]: e["sha256"] for e in manifest["files"]},
        "sections": _sections(manifest),
        "key_id": kid,
        "signed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _sections(manifest: dict[str, Any]) -> dict[str, str]:
    return {k: hashlib.sha256(_canonical(v)).hexdigest() for k, v in manifest.items() if k != "files"}


def sign_bundle(bundle: str | Path, private_key_path: str | Path, password: bytes | None = None) -> Path:
    """Sign ``bundle``: check its files against its manifest (a bundle that fails integrity is
    refused), then write ``signature.json`` over the exact bytes of manifest.json. Signing again
    replaces the signature. Returns the signature's path."""
    root = Path(bundle)
    key = load_private_key(private_key_path, password)
    integrity = check_integrity(root)
    if not integrity.ok:
        raise ModelLoadError(f"refusing to sign {root}: {integrity.detail()}")
    kid = key_id(key.public_key())
    statement = _statement(integrity.manifest_bytes, integrity.manifest, kid)
    doc = {"format": FORMAT, "algorithm": ALGORITHM, "key_id": kid, "statement": statement,
           "signature": base64.b64encode(key.sign(_message(statement))).decode()}
    target = root / SIGNATURE
    # written beside the bundle and renamed in: never a half signature, never a stray file inside
    fd, tmp = tempfile.mkstemp(prefix=f".{root.name}.{SIGNATURE}.", dir=root.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return target


# ------------------------------------------------------------------------------------------------
# Verification

def verify_bundle_signature(bundle: str | Path, public_key_path: str | Path,
                            manifest_bytes: bytes | None = None) -> SignatureCheck:
    """Does ``signature.json`` prove, with the key in ``public_key_path``, that manifest.json is
    what was signed? Pass ``manifest_bytes`` (``check_integrity(...).manifest_bytes``) so the bytes
    whose files were checked are the bytes whose signature is checked. Returns a verdict with a
    one-line reason; a missing or unusable key file is a :class:`ConfigError`."""
    root = Path(bundle)
    public_key = load_public_key(public_key_path)
    want = key_id(public_key)
    try:
        doc = _load_signature(root)
    except FileNotFoundError:
        return SignatureCheck(False, f"unsigned: {root} has no {SIGNATURE}")
    except (ModelLoadError, ValueError) as exc:
        return SignatureCheck(False, f"{SIGNATURE} is malformed: {one_line(exc)}")
    statement, got = doc["statement"], doc["key_id"]
    if got != want or statement.get("key_id") != got:
        return SignatureCheck(False, f"signed by another key ({got[:23]}...), not by {Path(public_key_path).name} "
                                     f"({want[:23]}...)", key_id=got)
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(doc["signature_bytes"], _message(statement))
    except InvalidSignature:
        return SignatureCheck(False, f"{SIGNATURE} does not verify with {Path(public_key_path).name}: "
                                     "the signature or the statement it signs was altered", key_id=got)
    signed_at = statement.get("signed_at")
    if manifest_bytes is None:
        manifest_bytes = read_inside(root, MANIFEST, MANIFEST_MAX_BYTES)
    if hashlib.sha256(manifest_bytes).hexdigest() == statement["manifest"]["sha256"]:
        return SignatureCheck(True, f"manifest.json signed by {got[:23]}... on {signed_at}", got, signed_at)
    return SignatureCheck(False, _what_changed(manifest_bytes, statement), got, signed_at)


def _load_signature(root: Path) -> dict[str, Any]:
    raw = read_inside(root, SIGNATURE, _SIGNATURE_MAX_BYTES)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON ({one_line(exc)})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} document")
    if doc.get("algorithm") != ALGORITHM:
        raise ValueError(f"algorithm {doc.get('algorithm')!r}, expected {ALGORITHM!r}")
    st = doc.get("statement")
    if not (isinstance(st, dict) and isinstance(doc.get("key_id"), str) and isinstance(st.get("manifest"), dict)
            and isinstance(st["manifest"].get("sha256"), str) and isinstance(st.get("files"), dict)
            and isinstance(st.get("sections"), dict)):
        raise ValueError("statement lacks key_id, manifest.sha256, files or sections")
    try:
        doc["signature_bytes"] = base64.b64decode(doc.get("signature", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError("signature is not base64") from None
    return doc


def _what_changed(manifest_bytes: bytes, statement: dict[str, Any]) -> str:
    """Why the current manifest is not the signed one, from the signed statement's digests."""
    try:
        now = parse_manifest(manifest_bytes)
    except ModelLoadError as exc:
        return f"manifest.json changed after signing and is no longer a valid manifest ({one_line(exc)})"
    signed_files: dict[str, str] = statement["files"]
    files = {e["path"]: e["sha256"] for e in now["files"]}
    changed = sorted(p for p in files.keys() & signed_files.keys() if files[p] != signed_files[p])
    added = sorted(files.keys() - signed_files.keys())
    removed = sorted(signed_files.keys() - files.keys())
    if changed or added or removed:
        parts = ([f"{', '.join(changed)} changed"] if changed else []) + \
                ([f"{', '.join(added)} added"] if added else []) + \
                ([f"{', '.join(removed)} removed"] if removed else [])
        return f"manifest.json was re-hashed after signing: {'; '.join(parts)}"
    signed_sections: dict[str, str] = statement["sections"]
    sections = _sections(now)
    differ = sorted(k for k in sections.keys() | signed_sections.keys() if sections.get(k) != signed_sections.get(k))
    if differ:
        verb = "differs" if len(differ) == 1 else "differ"
        return f"manifest.json changed after signing: {', '.join(differ)} {verb} from what was signed"
    return "manifest.json changed after signing (its bytes; same content as signed)"
