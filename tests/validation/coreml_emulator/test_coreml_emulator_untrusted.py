"""A .mlpackage is untrusted data: the emulator must read nothing outside the package, only
regular files, never more than the spec declares, and refuse anything else with an edgeport
error. Packages here are real coremltools conversions, edited the way an attacker would."""
from __future__ import annotations

import builtins
import json
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.errors import EdgeportError, RuntimeLoadError

SPEC = Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS = Path("Data/com.apple.CoreML/weights/weight.bin")


@pytest.fixture(scope="module")
def base_package(tmp_path_factory) -> Path:
    """A small conv + linear model converted by coremltools (fp16, iOS16), weights in weight.bin."""
    from edgeport.exporters._coreml_convert import convert_module

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(8 * 6 * 6, 10)).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    ml, _ = convert_module(module, [x], ["x"], ["y"], True, "iOS16")
    path = tmp_path_factory.mktemp("untrusted") / "base.mlpackage"
    ml.save(str(path))
    assert (path / WEIGHTS).stat().st_size > 1000
    return path


@pytest.fixture
def package(base_package, tmp_path) -> Path:
    """A fresh copy of the base package, inside its own folder (``tmp_path/pkg``); files an
    attack aims at live beside it in ``tmp_path``, outside the package."""
    dest = tmp_path / "pkg" / "model.mlpackage"
    shutil.copytree(base_package, dest)
    return dest


def load(path: Path):
    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    return CoreMLEmulatorRuntime().load(path)


def edit_spec(package: Path, edit) -> None:  # noqa: ANN001 - edit(spec) mutates the protobuf
    from edgeport.validation.runtimes.coreml_emulator.program import proto_modules

    model_pb2, _ = proto_modules()
    spec = model_pb2.Model()
    spec.ParseFromString((package / SPEC).read_bytes())
    edit(spec)
    (package / SPEC).write_bytes(spec.SerializeToString())


def blob_values(spec):  # noqa: ANN001, ANN201
    fn = spec.mlProgram.functions["main"]
    for op in fn.block_specializations[fn.opset].operations:
        for value in list(op.attributes.values()):
            if value.WhichOneof("value") == "blobFileValue":
                yield value


def set_blob_names(package: Path, name: str) -> None:
    def edit(spec):  # noqa: ANN001, ANN202
        for value in blob_values(spec):
            value.blobFileValue.fileName = name
    edit_spec(package, edit)


@pytest.fixture
def opened(monkeypatch) -> list[Path]:
    """Every path opened with ``open`` while the test runs (the emulator's only way to read)."""
    seen: list[Path] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if isinstance(file, (str, os.PathLike)):
            seen.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    return seen


def decoy(tmp_path: Path, base_package: Path) -> Path:
    """A valid weight file outside the package: if confinement failed, loading would succeed."""
    target = tmp_path / "secret" / "weight.bin"
    target.parent.mkdir()
    shutil.copy(base_package / WEIGHTS, target)
    return target


def assert_nothing_outside(opened: list[Path], package: Path) -> None:
    root = package.resolve()
    # threadpoolctl reads /proc/self/maps and Python its own modules: not package data
    outside = [p for p in opened if root not in p.parents and p != root
               and "site-packages" not in str(p) and p.parts[:2] != ("/", "proc")]
    assert not outside, outside


# ---- the base package is sound -----------------------------------------------------------------
def test_untouched_package_loads_and_reads_only_its_own_files(package, opened):
    sess = load(package)
    out = sess.run({"x": np.zeros((1, 3, 8, 8), np.float32)})
    assert out["y"].shape == (1, 10)
    assert_nothing_outside(opened, package)
    assert any(p.name == "weight.bin" for p in opened)


# ---- paths leading out of the package ----------------------------------------------------------
@pytest.mark.parametrize("name", ["@model_path/weights/../../../../../secret/weight.bin",
                                  "@model_path/../../../../secret/weight.bin",
                                  "../../../../secret/weight.bin"])
def test_weight_file_name_climbing_out_is_refused(package, base_package, tmp_path, opened, name):
    decoy(tmp_path, base_package)
    set_blob_names(package, name)
    opened.clear()
    with pytest.raises(RuntimeLoadError, match="outside the package"):
        load(package)
    assert_nothing_outside(opened, package)


def test_absolute_weight_file_name_is_refused(package, base_package, tmp_path, opened):
    target = decoy(tmp_path, base_package)
    set_blob_names(package, str(target))
    opened.clear()
    with pytest.raises(RuntimeLoadError, match="absolute path"):
        load(package)
    assert_nothing_outside(opened, package)


@pytest.mark.parametrize("path", ["../../../secret/model.mlmodel", "{outside}"])
def test_manifest_path_out_of_the_package_is_refused(package, tmp_path, opened, path):
    outside = tmp_path / "secret" / "model.mlmodel"
    outside.parent.mkdir()
    shutil.copy(package / SPEC, outside)
    manifest = json.loads((package / "Manifest.json").read_text())
    root = manifest["rootModelIdentifier"]
    manifest["itemInfoEntries"][root]["path"] = path.format(outside=outside)
    (package / "Manifest.json").write_text(json.dumps(manifest))
    opened.clear()
    with pytest.raises(RuntimeLoadError, match="outside the package|absolute path"):
        load(package)
    assert_nothing_outside(opened, package)


def test_symlink_leaving_the_package_is_refused(package, base_package, tmp_path, opened):
    target = decoy(tmp_path, base_package)
    (package / WEIGHTS).unlink()
    (package / WEIGHTS).symlink_to(target)
    opened.clear()
    with pytest.raises(RuntimeLoadError, match="outside the package"):
        load(package)
    assert_nothing_outside(opened, package)


def test_symlink_inside_the_package_is_followed(package):
    moved = package / "Data" / "elsewhere.bin"
    (package / WEIGHTS).rename(moved)
    (package / WEIGHTS).symlink_to(Path("../../elsewhere.bin"))
    assert load(package).run({"x": np.zeros((1, 3, 8, 8), np.float32)})["y"].shape == (1, 10)


# ---- files that are not regular ---------------------------------------------------------------
def test_weights_pointing_at_dev_zero_are_refused(package, opened):
    (package / WEIGHTS).unlink()
    (package / WEIGHTS).symlink_to("/dev/zero")
    with pytest.raises(RuntimeLoadError, match="outside the package|not a regular file"):
        load(package)
    assert Path("/dev/zero") not in opened


def test_fifo_inside_the_package_is_refused_without_blocking(package):
    (package / WEIGHTS).unlink()
    os.mkfifo(package / WEIGHTS)
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            load(package)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)  # opening a FIFO would block forever
    worker.start()
    worker.join(timeout=30)
    assert result, "loading blocked on a FIFO"
    assert isinstance(result[0], RuntimeLoadError) and "not a regular file" in str(result[0])


# ---- reads bounded by the declared sizes ------------------------------------------------------
def _first_record(package: Path) -> int:
    offsets = []
    edit_spec(package, lambda spec: offsets.extend(v.blobFileValue.offset for v in blob_values(spec)))
    return min(offsets)


def test_blob_record_claiming_fewer_bytes_than_declared_is_refused(package):
    offset = _first_record(package)
    data = bytearray((package / WEIGHTS).read_bytes())
    struct.pack_into("<Q", data, offset + 8, 2)  # size: 2 bytes for a whole conv weight
    (package / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(RuntimeLoadError, match="holds 2 bytes"):
        load(package)


def test_blob_data_offset_past_the_end_is_refused(package):
    offset = _first_record(package)
    data = bytearray((package / WEIGHTS).read_bytes())
    struct.pack_into("<Q", data, offset + 16, len(data) + (1 << 40))
    (package / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(RuntimeLoadError, match="past the end"):
        load(package)


def test_huge_declared_weight_shape_is_refused_before_reading(package):
    def edit(spec):  # noqa: ANN001, ANN202
        value = next(iter(blob_values(spec)))
        dims = value.type.tensorType.dimensions
        dims[0].constant.size = 1 << 40  # a petabyte-sized weight
    edit_spec(package, edit)
    with pytest.raises(RuntimeLoadError, match="past the end|needs"):
        load(package)


def test_oversized_spec_is_refused_unread(package, opened):
    spec = package / SPEC
    with open(spec, "r+b") as fh:  # sparse: 600 MB on paper, no disk used
        fh.truncate(600 << 20)
    opened.clear()
    with pytest.raises(RuntimeLoadError, match="over the .*-byte limit"):
        load(package)


def test_oversized_or_malformed_manifest_is_refused(package):
    manifest = package / "Manifest.json"
    manifest.write_bytes(b'{"itemInfoEntries": ')
    with pytest.raises(RuntimeLoadError, match="unreadable Manifest.json"):
        load(package)
    with open(manifest, "r+b") as fh:
        fh.truncate(8 << 20)
    with pytest.raises(RuntimeLoadError, match="limit"):
        load(package)


# ---- anything at all: edgeport errors only ----------------------------------------------------
def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        if out:
            out[pos % len(out)] = byte
    return bytes(out[:cut] if cut is not None else out)


_EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)


_FIELDS = st.tuples(st.integers(0, 7), st.integers(0, 1 << 41), st.integers(0, 1 << 36), st.integers(0, 40))


def _mutate_fields(package: Path, fields: tuple[int, int, int, int]) -> None:
    """Edit one weight's declared offset, first dimension and element type in the spec itself."""
    which, offset, dim, dtype = fields

    def edit(spec):  # noqa: ANN001, ANN202
        values = list(blob_values(spec))
        value = values[which % len(values)]
        value.blobFileValue.offset = offset
        if value.type.tensorType.dimensions:
            value.type.tensorType.dimensions[0].constant.size = dim
        value.type.tensorType.dataType = dtype
    edit_spec(package, edit)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["manifest", "spec", "spec_fields", "weights_header", "weights_record"]),
       edits=_EDITS, cut=st.one_of(st.none(), st.integers(0, 4096)), fields=_FIELDS)
def test_mutated_packages_raise_only_edgeport_errors(base_package, tmp_path_factory, target, edits, cut, fields):
    package = tmp_path_factory.mktemp("fuzz") / "m.mlpackage"
    shutil.copytree(base_package, package)
    if target == "spec_fields":
        _mutate_fields(package, fields)
        try:
            load(package)
        except EdgeportError as exc:
            assert "\n" not in str(exc), str(exc)
        finally:
            shutil.rmtree(package.parent, ignore_errors=True)
        return
    if target == "manifest":
        path = package / "Manifest.json"
    elif target == "spec":
        path = package / SPEC
    else:
        path = package / WEIGHTS
    data = path.read_bytes()
    if target == "weights_header":
        edits = [(pos % 64, b) for pos, b in edits]       # the file header
    elif target == "weights_record":
        edits = [(64 + pos % 64, b) for pos, b in edits]  # the first blob's record
    path.write_bytes(_mutate(data, edits, cut if target in ("manifest", "spec") else None))
    try:
        load(package)
    except EdgeportError as exc:
        assert "\n" not in str(exc), str(exc)  # one clear line
    finally:
        shutil.rmtree(package.parent, ignore_errors=True)
