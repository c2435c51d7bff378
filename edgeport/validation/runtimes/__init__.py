"""Runtimes, registered by name, imported only when used."""
from __future__ import annotations

from pathlib import Path

from ...errors import ModelLoadError
from ...registry import LazyRegistry
from .base import Runtime, Session, Timing

RUNTIMES = LazyRegistry("runtime", {
    "onnxruntime": "edgeport.validation.runtimes.onnxruntime:OnnxRuntime",
    "litert": "edgeport.validation.runtimes.litert:LiteRTRuntime",
    "litert-reference": "edgeport.validation.runtimes.litert:LiteRTReferenceRuntime",
    "coreml-emulator": "edgeport.validation.runtimes.coreml_emulator:CoreMLEmulatorRuntime",
    "tfjs-node": "edgeport.validation.runtimes.tfjs_node:TFJSNodeRuntime",
    "tfjs-node-cpu": "edgeport.validation.runtimes.tfjs_node:TFJSNodeCPURuntime",
    "tfjs-chromium": "edgeport.validation.runtimes.tfjs_chromium:TFJSChromiumRuntime",
})


def register_runtime(name: str, target: str) -> None:
    """Add a runtime as ``"package.module:Class"``; a second registration of a name is refused."""
    RUNTIMES.register(name, target)


def known_runtimes() -> list[str]:
    return RUNTIMES.names()


def get_runtime(name: str) -> Runtime:
    return RUNTIMES.load(name)()


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


__all__ = ["RUNTIMES", "Runtime", "Session", "Timing", "get_runtime", "known_runtimes", "register_runtime",
           "runtime_for_path"]
