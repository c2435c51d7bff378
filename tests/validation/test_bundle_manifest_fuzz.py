"""Manifests are untrusted: thousands of generated edits of a real bundle's manifest.json give
a verdict or one of edgeport's named errors — never another exception, never a read outside."""
from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import null_format
from edgeport.cli import main
from edgeport.errors import EdgeportError
from edgeport.validation.bundle import check_integrity

FIELDS = ["files", "plan", "artifact", "source", "model", "target", "edgeport_version"]
leaf = (st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=20)
        | st.sampled_from(["../x", "/etc/passwd", "model.null", "report.json", "a//b", "./golden.npz", "0" * 64]))
values = st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["path", "sha256", "bytes", "entry", "format", "files", "precision", "x"]), c, max_size=4),
    max_leaves=10)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    null_format.register()
    root = tmp_path_factory.mktemp("fuzz")
    (root / "p.toml").write_text(null_format.PROFILE)
    assert main(["export", "tests/null_format.py:factory", "--target", str(root / "p.toml"), "-o",
                 str(root / "out"), "-q"]) == 0
    return root / "out" / "tiny-null-target"


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.dictionaries(st.sampled_from(FIELDS), values, max_size=3),
       file_edit=st.tuples(st.integers(0, 3), st.sampled_from(["path", "sha256", "bytes"]), leaf))
def test_edited_manifests_give_named_errors(bundle, tmp_path, edits, file_edit):
    copy = tmp_path / "b"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(edits)
    i, key, value = file_edit
    if isinstance(manifest.get("files"), list) and i < len(manifest["files"]) and isinstance(manifest["files"][i], dict):
        manifest["files"][i][key] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    try:
        check_integrity(copy)
    except EdgeportError:
        pass
