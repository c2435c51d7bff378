"""Reading an ML Program (.mlpackage) into plain Python objects, without importing coremltools.

The protobuf classes come from the ``coremltools/proto`` folder of the installed coremltools,
imported under a private package name: importing ``coremltools`` itself pulls in TensorFlow
(~9 s), which a runtime that only reads a file should not pay.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import struct
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import MissingDependencyError, RuntimeLoadError, one_line
from .blob import BlobFile, decode_raw
from .files import MAX_MANIFEST_BYTES, MAX_SPEC_BYTES, confine, read_bounded, regular_file

_ALIAS = "_edgeport_coreml_proto"


def proto_modules() -> tuple[Any, Any]:
    """(Model_pb2, MIL_pb2), reusing coremltools' own modules when it is already imported."""
    if "coremltools.proto.Model_pb2" in sys.modules:
        return sys.modules["coremltools.proto.Model_pb2"], sys.modules["coremltools.proto.MIL_pb2"]
    if _ALIAS not in sys.modules:
        spec = importlib.util.find_spec("coremltools")
        if spec is None or spec.origin is None:
            raise MissingDependencyError("coremltools (its protobuf definitions are needed to read "
                                         ".mlpackage files)", extra="coreml")
        pkg = types.ModuleType(_ALIAS)
        pkg.__path__ = [str(Path(spec.origin).parent / "proto")]
        sys.modules[_ALIAS] = pkg
    return (importlib.import_module(f"{_ALIAS}.Model_pb2"), importlib.import_module(f"{_ALIAS}.MIL_pb2"))


@dataclass(frozen=True)
class TensorType:
    """A declared MIL type: element type name (``FLOAT16``, ``INT32``...) and shape (-1 = unknown)."""

    dtype: str
    shape: tuple[int, ...] | None  # None: rank unknown


@dataclass
class Operation:
    type: str
    #: parameter name -> list of arguments; each is ("var", name) or ("val", python/numpy value)
    inputs: dict[str, list[tuple[str, Any]]]
    outputs: list[tuple[str, TensorType | None]]
    #: nested blocks of control-flow ops (while_loop: cond, body; cond: true, false)
    blocks: list[Block] = field(default_factory=list)

    @property
    def has_blocks(self) -> bool:
        return bool(self.blocks)


@dataclass
class Block:
    """A nested block: named inputs (bound by the op that runs it), ops, output var names."""

    inputs: list[tuple[str, TensorType | None]]
    operations: list[Operation]
    outputs: list[str]


def walk(operations: list[Operation]) -> Any:
    """Every operation, those inside nested blocks included (depth first)."""
    for op in operations:
        yield op
        for block in op.blocks:
            yield from walk(block.operations)


@dataclass
class FeatureSpec:
    name: str
    dtype: str              # numpy dtype name
    shape: tuple[int, ...]  # -1 where flexible


@dataclass
class Program:
    path: Path
    spec_version: int
    opset: str
    inputs: list[tuple[str, TensorType]]
    operations: list[Operation]
    outputs: list[str]
    feature_inputs: list[FeatureSpec]
    feature_outputs: list[FeatureSpec]
    metadata: dict[str, str] = field(default_factory=dict)


_ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32",
                 "INT8": "int8"}


def find_model_file(path: Path) -> tuple[Path, Path]:
    """(the model spec inside a package, the folder its files are confined to).

    For a package that folder is the package itself: Manifest.json's ``path`` and the spec's
    weight file names are untrusted and may not lead out of it. A bare ``.mlmodel`` file is
    confined to its own folder.
    """
    p = Path(path)
    if not p.exists():
        raise RuntimeLoadError(f"CoreML model not found: {p}")
    if p.is_file():
        return regular_file(p, "CoreML model"), p.resolve().parent
    root = p.resolve()
    manifest = p / "Manifest.json"
    if manifest.exists():
        try:
            m = json.loads(read_bounded(manifest, MAX_MANIFEST_BYTES, f"{p.name}/Manifest.json"))
            item = m["itemInfoEntries"][m["rootModelIdentifier"]]
            rel = item["path"]
            if not isinstance(rel, str):
                raise TypeError(f"path is a {type(rel).__name__}")
        except (KeyError, TypeError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise RuntimeLoadError(f"{p.name}: unreadable Manifest.json ({type(exc).__name__}: {exc})") from exc
        if Path(rel).is_absolute():
            raise RuntimeLoadError(f"{p.name}/Manifest.json: absolute path {rel!r} refused "
                                   "(files must be inside the package)")
        return confine(root, f"Data/{rel}", f"{p.name}/Manifest.json"), root
    fallback = p / "Data" / "com.apple.CoreML" / "model.mlmodel"
    if fallback.exists():
        return confine(root, "Data/com.apple.CoreML/model.mlmodel", p.name), root
    raise RuntimeLoadError(f"{p.name} is not a CoreML package (no Manifest.json / model.mlmodel)")


def load_program(path: Path, function: str = "main") -> Program:
    """Parse ``path`` (.mlpackage folder or .mlmodel file) into a :class:`Program`.

    The package is untrusted: anything malformed is a :class:`RuntimeLoadError`, never another
    exception, and no file outside the package is opened.
    """
    model_file, root = find_model_file(path)
    raw = read_bounded(model_file, MAX_SPEC_BYTES, f"{Path(path).name} spec")
    model_pb2, mil_pb2 = proto_modules()
    spec = model_pb2.Model()
    try:
        spec.ParseFromString(raw)
    except Exception as exc:  # protobuf raises DecodeError, RecursionError and friends
        raise RuntimeLoadError(f"{model_file.name} is not a readable CoreML model spec: {one_line(exc)}") from exc
    del raw
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise RuntimeLoadError(f"{Path(path).name} is a CoreML {kind!r} model; the emulator runs "
                               "ML Programs (mlprogram) only")
    prog = spec.mlProgram
    if function not in prog.functions:
        raise RuntimeLoadError(f"ML Program has no function {function!r} "
                               f"(has: {', '.join(prog.functions) or 'none'})")
    fn = prog.functions[function]
    if fn.opset not in fn.block_specializations:
        raise RuntimeLoadError(f"ML Program function {function!r} has no block for its opset {fn.opset!r}")
    block = fn.block_specializations[fn.opset]
    decoder = _ValueDecoder(mil_pb2, model_file.parent, root)
    try:
        inputs = [(nv.name, decoder.value_type(nv.type)) for nv in fn.inputs]
        ops = [_operation(op, decoder) for op in block.operations]
        desc = spec.description
        return Program(path=Path(path), spec_version=spec.specificationVersion, opset=fn.opset,
                       inputs=inputs, operations=ops, outputs=list(block.outputs),
                       feature_inputs=[_feature(f) for f in desc.input],
                       feature_outputs=[_feature(f) for f in desc.output],
                       metadata=dict(desc.metadata.userDefined))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error, RecursionError) as exc:
        # what a crafted spec can make numpy / struct / protobuf accessors raise
        raise RuntimeLoadError(f"{Path(path).name}: malformed ML Program ({type(exc).__name__}: "
                               f"{one_line(exc, 200)})") from exc
    finally:
        decoder.close()


def _feature(f: Any) -> FeatureSpec:
    kind = f.type.WhichOneof("Type")
    if kind != "multiArrayType":
        raise RuntimeLoadError(f"feature {f.name!r} is of type {kind}; the emulator handles "
                               "multi-array features only")
    arr = f.type.multiArrayType
    type_name = type(arr).ArrayDataType.Name(arr.dataType)
    shape = tuple(int(s) for s in arr.shape)
    if arr.WhichOneof("ShapeFlexibility") == "shapeRange":
        shape = tuple(int(r.lowerBound) if r.lowerBound == r.upperBound else -1
                      for r in arr.shapeRange.sizeRanges)
    return FeatureSpec(f.name, _ARRAY_DTYPES.get(type_name, "float32"), shape)


def _operation(op: Any, decoder: _ValueDecoder) -> Operation:
    inputs: dict[str, list[tuple[str, Any]]] = {}
    for key, binding in op.inputs.items():
        args = []
        for arg in binding.arguments:
            if arg.WhichOneof("binding") == "name":
                args.append(("var", arg.name))
            else:
                args.append(("val", decoder.value(arg.value)))
        inputs[key] = args
    # iOS16 constexpr ops (and const) keep their parameters as attributes
    for key, value in op.attributes.items():
        if key != "name" and key not in inputs:
            inputs[key] = [("val", decoder.value(value))]
    outputs = [(o.name, decoder.value_type(o.type)) for o in op.outputs]
    blocks = [Block([(nv.name, decoder.value_type(nv.type)) for nv in b.inputs],
                    [_operation(inner, decoder) for inner in b.operations], list(b.outputs))
              for b in op.blocks]
    return Operation(op.type, inputs, outputs, blocks)


class _ValueDecoder:
    def __init__(self, mil_pb2: Any, model_dir: Path, root: Path):
        self.names = {v: k for k, v in mil_pb2.DataType.items()}
        self.model_dir = model_dir
        self.root = root
        self.blobs: dict[str, BlobFile] = {}

    def close(self) -> None:
        for blob in self.blobs.values():
            blob.close()

    def value_type(self, vt: Any) -> TensorType | None:
        kind = vt.WhichOneof("type")
        if kind != "tensorType":
            return None
        t = vt.tensorType
        dims = []
        for d in t.dimensions:
            dims.append(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else -1)
        shape = tuple(dims) if t.rank >= 0 and len(dims) == t.rank else None
        return TensorType(self.names.get(t.dataType, str(t.dataType)), shape)

    def value(self, v: Any) -> Any:
        ttype = self.value_type(v.type)
        if ttype is None:
            raise RuntimeLoadError(f"non-tensor constant of type {v.type.WhichOneof('type')} is not supported")
        shape = ttype.shape or ()
        which = v.WhichOneof("value")
        if which == "blobFileValue":
            fname = v.blobFileValue.fileName
            blob = self.blobs.get(fname)
            if blob is None:
                # "@model_path/" is the spec's folder; the name must stay inside the package
                rel = fname.removeprefix("@model_path/")
                spec_dir = self.model_dir.resolve().relative_to(self.root)
                path = confine(self.root, str(spec_dir / rel) if str(spec_dir) != "." else rel, "weight file")
                blob = self.blobs[fname] = BlobFile(path)
            return blob.read(int(v.blobFileValue.offset), ttype.dtype, shape)
        if which != "immediateValue":
            raise RuntimeLoadError(f"constant with no value ({which})")
        tv = v.immediateValue.tensor
        field_name = tv.WhichOneof("value")
        if ttype.dtype == "STRING":
            vals = list(tv.strings.values)
            return vals[0] if not shape else vals
        if field_name == "bytes":
            return decode_raw(bytes(tv.bytes.values), ttype.dtype, shape).copy()
        raw = {"floats": tv.floats, "ints": tv.ints, "bools": tv.bools, "longInts": tv.longInts,
               "doubles": tv.doubles}.get(field_name)
        if raw is None:
            raise RuntimeLoadError(f"immediate value field {field_name!r} is not supported")
        np_type = {"FLOAT32": np.float32, "FLOAT16": np.float32, "FLOAT64": np.float64, "BOOL": np.bool_,
                   "INT64": np.int64, "UINT8": np.uint8, "INT8": np.int8, "UINT32": np.uint32,
                   "UINT16": np.uint16, "INT16": np.int16}.get(ttype.dtype, np.int32)
        arr = np.asarray(list(raw.values), dtype=np_type)
        return arr.reshape(shape) if shape else arr.reshape(())
