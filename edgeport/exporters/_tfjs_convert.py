"""SavedModel -> TF.js graph model, in-process, with tensorflowjs' own converter.

``tensorflowjs`` is installed without its dependencies (its metadata pins versions that cannot
co-exist with the rest of the toolchain). Its SavedModel converter imports
``tensorflow_decision_forests`` and ``tensorflow_hub`` at module load although the SavedModel path
never uses them, so small stand-in modules satisfy those imports when the real ones are absent.
``jax`` is deliberately not stood in for: Keras 3 probes it and a fake one breaks Keras.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ConversionError, MissingDependencyError

#: weights with fewer elements than this stay float16 in an int8 (uint8) export: biases, norm
#: scales and tiny kernels cost almost no bytes but lose most of their precision to one per-tensor
#: 8-bit affine range.
UINT8_MIN_ELEMENTS = 1024

_STANDIN_NAMES = ("tensorflow_decision_forests", "tensorflow_hub")


def _stand_in(name: str) -> types.ModuleType:
    """A module that imports fine and fails loudly only if something really uses it."""
    mod = types.ModuleType(name)
    mod.__doc__ = f"edgeport stand-in for {name} (not installed; the SavedModel path does not use it)"

    def _missing(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise ConversionError("tfjs", "SavedModel→TF.js", f"{name}.{attr} is needed but {name} is not installed")

    mod.__getattr__ = _missing  # type: ignore[attr-defined]
    return mod


def import_converter() -> Any:
    """Import ``tensorflowjs``' SavedModel converter module, TF environment prepared first."""
    from ..tf_source import prepare_tensorflow_env

    prepare_tensorflow_env()  # TF_ENABLE_ONEDNN_OPTS=0 must precede the TensorFlow import
    for name in _STANDIN_NAMES:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = _stand_in(name)
    try:
        from tensorflowjs.converters import tf_saved_model_conversion_v2 as conv
    except ImportError as exc:
        raise MissingDependencyError("tensorflowjs", extra="tfjs", hint=f"import failed: {exc}") from exc
    return conv


def tensorflowjs_version() -> str:
    try:
        from importlib.metadata import version

        return version("tensorflowjs")
    except Exception:  # metadata missing in odd installs: the version is informative only
        return "unknown"


def convert_saved_model(saved_model: Path, out_dir: Path,
                        quantization: dict[str, Any] | None = None) -> Path:
    """Run tensorflowjs' converter; return the written ``model.json``."""
    conv = import_converter()
    if out_dir.exists():  # stale shards of an earlier export would ride along in the download
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    try:
        conv.convert_tf_saved_model(str(saved_model), str(out_dir), signature_def="serving_default",
                                    saved_model_tags="serve", quantization_dtype_map=quantization,
                                    strip_debug_ops=True, weight_shard_size_bytes=4 * 1024 * 1024)
    except ConversionError:
        raise
    except Exception as exc:  # the converter raises ValueError/TypeError/TF errors alike
        raise ConversionError("tfjs", "SavedModel→TF.js",
                              f"{type(exc).__name__}: {exc}") from exc
    model_json = out_dir / "model.json"
    if not model_json.is_file():
        raise ConversionError("tfjs", "SavedModel→TF.js", "no model.json was written")
    return model_json


def weight_sizes(model_json: Path) -> dict[str, int]:
    """Float weight name -> element count, from a model.json's weights manifest."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    out: dict[str, int] = {}
    for group in manifest:
        for w in group["weights"]:
            if w.get("dtype") == "float32" and "quantization" not in w:
                n = 1
                for d in w.get("shape", []):
                    n *= int(d)
                out[w["name"]] = n
    return out


def quantization_map(precision: str, sizes: dict[str, int]) -> dict[str, Any] | None:
    """The ``quantization_dtype_map`` for a precision.

    fp16: every float weight stored as float16. int8: large weights as uint8 (per-tensor affine),
    the small ones as float16 (see UINT8_MIN_ELEMENTS). TF.js dequantizes all of them to float32
    when the model loads, so this changes the download, not the arithmetic.
    """
    if precision == "fp32":
        return None
    if precision == "fp16":
        return {"float16": True}
    if precision == "int8":
        # names are matched as fnmatch patterns: escape the pattern characters they may hold
        big = sorted(pattern(n) for n, k in sizes.items() if k >= UINT8_MIN_ELEMENTS)
        if not big:
            return {"uint8": True}
        return {"uint8": big, "float16": True}
    raise ConversionError("tfjs", "precision", f"TF.js weight quantization has no {precision!r}")


_MANIFEST_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1"}


def read_weights(model_json: Path) -> list[tuple[dict[str, Any], Any]]:
    """(manifest entry, array) of every weight of an unquantized model.json this exporter wrote."""
    import numpy as np

    folder = Path(model_json).parent
    out: list[tuple[dict[str, Any], Any]] = []
    for group in json.loads(Path(model_json).read_text())["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if "quantization" in w or w["dtype"] not in _MANIFEST_DTYPES:
                raise ConversionError("tfjs", "weight re-quantization",
                                      f"weight {w['name']!r} is stored as {w.get('quantization', w['dtype'])}: "
                                      "only an unquantized probe can be re-quantized")
            dtype = np.dtype(_MANIFEST_DTYPES[w["dtype"]])
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(w["shape"])
            offset += count * dtype.itemsize
            out.append((w, arr))
    return out


def requantize(model_json: Path, out_dir: Path, quantization: dict[str, Any], precision: str) -> Path:
    """Write ``model_json``'s graph with its weights stored per ``quantization`` (a
    ``quantization_dtype_map``) into ``out_dir``, by tensorflowjs' own weight writer — the bytes its
    converter writes for that map, without converting the SavedModel again."""
    import_converter()
    from tensorflowjs.write_weights import write_weights

    doc = json.loads(Path(model_json).read_text())
    group = [{"name": w["name"], "data": arr} for w, arr in read_weights(model_json)]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    try:
        doc["weightsManifest"] = write_weights([group], str(out_dir), shard_size_bytes=4 * 1024 * 1024,
                                               write_manifest=False, quantization_dtype_map=quantization)
    except Exception as exc:  # tensorflowjs raises ValueError for a map it cannot apply
        raise ConversionError("tfjs", "weight quantization", f"{type(exc).__name__}: {exc}") from exc
    meta = doc.get("userDefinedMetadata", {})
    for value in meta.values():
        if isinstance(value, dict) and "precision" in value:
            value["precision"] = precision
    out = out_dir / "model.json"
    out.write_text(json.dumps(doc, separators=(",", ":")))
    return out


def pattern(name: str) -> str:
    """A weight name as an fnmatch pattern matching only itself (the dtype map's names are patterns)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)
