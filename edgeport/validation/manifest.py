"""manifest.json's shape: what a bundle lists, checked before any file is touched."""
from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from ..errors import ModelLoadError, one_line

MANIFEST = "manifest.json"
#: written by :func:`edgeport.validation.signing.sign_bundle`; never listed in the manifest (it
#: signs the manifest), the one unlisted file allowed, and only at the top of the bundle
SIGNATURE = "signature.json"
#: the files a manifest cannot list
RESERVED = {MANIFEST, SIGNATURE}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"path", "sha256", "bytes"}


def parse_manifest(raw: bytes, where: str = MANIFEST) -> dict[str, Any]:
    """Manifest bytes as a dict, its shape checked: a JSON object whose ``files`` is a list of
    ``{path, sha256, bytes}`` with safe unique paths; ``artifact.entry``/``artifact.files``, when
    present, name listed files. One :class:`ModelLoadError` naming the first problem."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelLoadError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{where} is not valid JSON: {one_line(exc)}") from None
    except RecursionError:
        raise ModelLoadError(f"{where} is nested too deeply") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{where} must hold a JSON object, not {type(manifest).__name__}")
    _check_artifact(where, manifest.get("artifact"), check_files(where, manifest))
    return manifest


def check_files(where: str, manifest: dict[str, Any]) -> set[str]:
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ModelLoadError(f"{where}: files must be a list of {{path, sha256, bytes}}")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        _check_entry(where, i, entry, seen)
    return seen


def _check_entry(where: str, i: int, entry: Any, seen: set[str]) -> None:
    at = f"{where}: files[{i}]"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{at} must be an object {{path, sha256, bytes}}")
    lacking = sorted(_ENTRY_KEYS - set(entry))
    if lacking:
        raise ModelLoadError(f"{at} lacks {lacking[0]} (each entry is {{path, sha256, bytes}})")
    path, digest, size = entry["path"], entry["sha256"], entry["bytes"]
    problem = safe_relative_path(path)
    if problem:
        raise ModelLoadError(f"{at}.path {path!r} {problem}")
    if path in RESERVED:
        raise ModelLoadError(f"{at}.path {path!r}: the manifest cannot list {path}")
    if path in seen:
        raise ModelLoadError(f"{at}.path {path!r} is listed twice")
    seen.add(path)
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ModelLoadError(f"{at}.sha256 must be 64 lowercase hex digits")
    if type(size) is not int or size < 0:
        raise ModelLoadError(f"{at}.bytes must be a non-negative integer")


def _check_artifact(where: str, art: Any, listed: set[str]) -> None:
    if not isinstance(art, dict):
        return  # the pipeline says which keys a bundle lacks
    names = [("artifact.entry", art["entry"])] if "entry" in art else []
    files = art.get("files", [])
    if not isinstance(files, list):
        raise ModelLoadError(f"{where}: artifact.files must be a list of paths")
    names += [(f"artifact.files[{i}]", f) for i, f in enumerate(files)]
    for key, path in names:
        problem = safe_relative_path(path)
        if problem:
            raise ModelLoadError(f"{where}: {key} {path!r} {problem}")
        if path not in listed and not any(p.startswith(path + "/") for p in listed):
            raise ModelLoadError(f"{where}: {key} {path!r} is not a file the manifest lists")


def safe_relative_path(path: Any) -> str | None:
    """Why ``path`` cannot name a file inside a bundle (None: it can). The answer depends on the
    string alone, never on what exists on disk."""
    if not isinstance(path, str):
        return "must be a string"
    if not path or "\0" in path or "\\" in path:
        return "is empty or holds a NUL or backslash"
    if path.startswith("/"):
        return "is absolute: paths are relative to the bundle"
    if ".." in path.split("/"):
        return "escapes the bundle (..)"
    if posixpath.normpath(path) != path:
        return "is not normalised (no ./, //, trailing /)"
    return None
