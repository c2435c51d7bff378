"""Runtimes, registered by name, imported only when used."""
from __future__ import annotations

import importlib
from pathlib import Path

from ...errors import ConfigError, ModelLoadError, UnknownNameError
from .base import Runtime, Session, Timing

_REGISTRY: dict[str, str] = {
    "onnxruntime": "edgeport.validation.runtimes.onnxruntime:OnnxRuntime",
    "litert": "edgeport.validation.runtimes.litert:LiteRTRuntime",
    "litert-reference": "edgeport.validation.runtimes.litert:LiteRTReferenceRuntime",
    "coreml-emulator": "edgeport.validation.runtimes.coreml_emulator:CoreMLEmulatorRuntime",
    "tfjs-node": "edgeport.validation.runtimes.tfjs_node:TFJSNodeRuntime",
    "tfjs-node-cpu": "edgeport.validation.runtimes.tfjs_node:TFJSNodeCPURuntime",
    "tfjs-chromium": "edgeport.validation.runtimes.tfjs_chromium:TFJSChromiumRuntime",
}


def register_runtime(name: str, target: str) -> None:
    """Add a runtime as ``"package.module:Class"``; a second registration of a name is refused."""
    if name in _REGISTRY:
        raise ConfigError(f"a runtime named {name!r} is already registered ({_REGISTRY[name]})")
    _REGISTRY[name] = target


def known_runtimes() -> list[str]:
    return list(_REGISTRY)


def get_runtime(name: str) -> Runtime:
    if name not in _REGISTRY:
        raise UnknownNameError("runtime", name, known_runtimes())
    mod_name, _, cls_name = _REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edgeport"):
            raise ConfigError(f"the {name} runtime is not available yet in this version") from exc
        raise
    return getattr(module, cls_name)()


def runtime_for_path(path: Path) -> str:
    """The default runtime for an artifact on disk, told by its name."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".onnx"):
        return "onnxruntime"
    if name.endswith(".tflite"):
        return "litert"
    if name.endswith(".mlpackage") or name.endswith(".mlmodel"):
        return "coreml-emulator"
    if name.endswith(".json") or (p.is_dir() and (p / "model.json").is_file()):
        return "tfjs-node"
    raise ModelLoadError(f"cannot tell the format of {p.name}; expected .onnx, .tflite, "
                         ".mlpackage or a TF.js model.json")


__all__ = ["Runtime", "Session", "Timing", "get_runtime", "known_runtimes", "register_runtime",
           "runtime_for_path"]
