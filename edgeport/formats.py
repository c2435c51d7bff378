"""Every artifact format, declared once: its files, how to make it, read it and run it.

A :class:`Format` record names the entry file, the suffixes that recognise an artifact on disk,
the on-disk layout, lazy ``"module:attr"`` references to its exporter, op inspector and runtimes,
the precisions its exporter can make and its typed options. This module is the ground floor: it
imports nothing heavy and no other edgeport layer, so profiles, exporters, runtimes and the CLI
all read formats from here. Adding a format = one :func:`register_format` call + the exporter,
runtime and inspector modules it names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, ModelLoadError, UnknownNameError
from .precision import Precision
from .registry import load_ref
from .strict import from_table, limits, to_table


class Layout(str, Enum):
    """Which files belong to an artifact whose entry is ``root/entry``."""

    FILE = "file"          # the entry file alone (model.onnx)
    FOLDER = "folder"      # the entry is a folder: every file under it (model.mlpackage/)
    SIBLINGS = "siblings"  # the entry file and every file in its folder (tfjs/model.json + shards)


# -- options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormatOptions:
    """Options every format takes (a profile's ``[options]`` table)."""

    #: samples of the calibration data used for static quantization and the int8 guard
    calibration_samples: int = field(default=256, metadata=limits(min=1, max=100_000))
    #: seconds one conversion or one runtime call may take before it is a named error
    timeout_s: float = field(default=600.0, metadata=limits(min=1.0, max=86_400.0, unit="s"))

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None, where: str = "[options]") -> "FormatOptions":
        return from_table(cls, table, where)

    def to_dict(self) -> dict[str, Any]:
        return to_table(self)

    def runtime_options(self) -> dict[str, Any]:
        """What a runtime's ``load`` receives besides the thread count."""
        return {"timeout_s": self.timeout_s}


@dataclass(frozen=True)
class OnnxOptions(FormatOptions):
    opset: int = field(default=18, metadata=limits(min=18, max=23))
    per_channel: bool = True
    #: onnxruntime's quant_pre_process before int8 (without it static int8 ran slower than fp32)
    quant_preprocess: bool = True
    #: keep the first weighted layers float when static int8 drifts on calibration inputs
    int8_guard: bool = True
    #: static int8's activations: "uint8" (asymmetric; onnxruntime's x86 int8 kernels multiply
    #: uint8 by int8, and EfficientNet-Lite0 ran at 0.48x fp32 against 0.77x with int8
    #: activations) or "int8" (asymmetric int8)
    activations: str = field(default="uint8", metadata=limits(choices=("uint8", "int8")))
    #: static int8 weights in 7 bits: "auto" where this host's onnxruntime kernels saturate (x86
    #: without VNNI), "on" for an artifact bound for such CPUs, "off" for the full 8-bit range
    reduce_range: str = field(default="auto", metadata=limits(choices=("auto", "on", "off")))


@dataclass(frozen=True)
class TFLiteOptions(FormatOptions):
    #: full-integer int8 models take/return float (quantized inside) or int8 tensors
    int8_io: str = field(default="float", metadata=limits(choices=("float", "int8")))
    int8_guard: bool = True


@dataclass(frozen=True)
class CoreMLOptions(FormatOptions):
    calibration_samples: int = field(default=128, metadata=limits(min=1, max=100_000))
    deployment_target: str = field(default="iOS16", metadata=limits(choices=("iOS16", "iOS17", "iOS18")))
    #: requested compute units; applied by the app at load, recorded in the report
    compute_units: str | None = field(default=None, metadata=limits(
        choices=("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")))
    #: tensors with fewer elements stay float (coremltools' own default is 2048)
    weight_threshold: int = field(default=0, metadata=limits(min=0))
    #: int8 / lut: "measured" keeps float the tensors whose compression costs the most error per
    #: byte saved, judged on calibration inputs; "all" compresses every tensor over weight_threshold
    tensor_policy: str = field(default="measured", metadata=limits(choices=("measured", "all")))
    #: activation calibration needs MLModel.predict, which runs only on macOS
    activation_quantization: bool = False


@dataclass(frozen=True)
class TFJSOptions(FormatOptions):
    #: a bound on one call to the JS side, not a speed gate: at 120 s the cpu backend's 64
    #: EfficientNet-Lite0 views timed out on a slower host and turned a passing export into exit 1
    timeout_s: float = field(default=600.0, metadata=limits(min=1.0, max=86_400.0, unit="s"))
    #: int8: "measured" stores as float16 the tensors one uint8 range per tensor harms most, judged in
    #: TF.js on calibration inputs; "all" stores every tensor of 1024 elements and more as uint8
    tensor_policy: str = field(default="measured", metadata=limits(choices=("measured", "all")))


# -- the record -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    """One artifact format. References are ``"package.module:attribute"`` strings, imported on use."""

    name: str
    entry: str                               # path of the entry inside a bundle
    suffixes: tuple[str, ...]                # an artifact path ending so is of this format
    layout: Layout
    exporter: str                            # -> an Exporter class
    runtimes: tuple[tuple[str, str], ...]    # (runtime name, -> Runtime class); the first is the default
    precisions: tuple[Precision, ...]        # what the exporter can make
    options: type[FormatOptions] = FormatOptions
    inspector: str | None = None             # -> inspect(path, plan) -> OpsReport
    #: a folder holding a file of this name is an artifact of this format (TF.js: model.json)
    marker: str | None = None

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0][0]

    @property
    def runtime_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.runtimes)

    def files(self, root: Path, entry: str) -> list[str]:
        """Relative posix paths of every file of the artifact at ``root/entry``."""
        path = Path(root) / entry
        if self.layout is Layout.FOLDER or path.is_dir():
            base = path
        elif self.layout is Layout.SIBLINGS:
            base = path.parent
        else:
            return [Path(entry).as_posix()]
        return sorted(f.relative_to(root).as_posix() for f in base.rglob("*") if f.is_file())

    def recognises(self, path: Path) -> bool:
        name = Path(path).name.lower()
        if any(name.endswith(s) for s in self.suffixes):
            return True
        return self.marker is not None and Path(path).is_dir() and (Path(path) / self.marker).is_file()


@dataclass(frozen=True)
class Artifact:
    """The files an exporter wrote under ``root``; ``entry`` is what a runtime loads.

    ``facts`` says in words what the precision means in this format (stored vs computed), for the
    report. ``fp32_bytes`` is the same model's size in this format at fp32, when the exporter
    made that file anyway (else the pipeline makes one for the size ratio).
    """

    format: str
    root: Path
    entry: str
    precision: Precision
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    fp32_bytes: int | None = None

    @property
    def path(self) -> Path:
        return self.root / self.entry

    def files(self) -> list[str]:
        return get_format(self.format).files(self.root, self.entry)

    def total_bytes(self) -> int:
        return sum((self.root / f).stat().st_size for f in self.files())

    def with_facts(self, **facts: Any) -> "Artifact":
        return dataclasses.replace(self, facts={**self.facts, **facts})


# -- the registry --------------------------------------------------------------------------------
_P = Precision
_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Add a format; a second format of the same name, or a runtime name already taken, is refused."""
    if fmt.name in _FORMATS:
        raise ConfigError(f"a format named {fmt.name!r} is already registered")
    if not fmt.runtimes:
        raise ConfigError(f"format {fmt.name!r} names no runtime")
    taken = {r: f.name for f in _FORMATS.values() for r in f.runtime_names}
    for name, ref in fmt.runtimes:
        if name in taken:
            raise ConfigError(f"a runtime named {name!r} is already registered (format {taken[name]})")
        _check_ref(ref)
    for ref in (fmt.exporter, fmt.inspector):
        if ref is not None:
            _check_ref(ref)
    _FORMATS[fmt.name] = fmt
    return fmt


def _check_ref(ref: str) -> None:
    if ":" not in ref:
        raise ConfigError(f"a reference must look like 'package.module:attribute', got {ref!r}")


def get_format(name: str) -> Format:
    if name not in _FORMATS:
        raise UnknownNameError("format", name, list(_FORMATS))
    return _FORMATS[name]


def formats() -> tuple[Format, ...]:
    return tuple(_FORMATS.values())


def runtime_ref(name: str) -> tuple[Format, str]:
    """The format a runtime belongs to and its ``"module:Class"`` reference."""
    for fmt in _FORMATS.values():
        for rname, ref in fmt.runtimes:
            if rname == name:
                return fmt, ref
    raise UnknownNameError("runtime", name, runtime_names())


def runtime_names() -> list[str]:
    return [r for f in _FORMATS.values() for r in f.runtime_names]


def format_for_path(path: Path) -> Format:
    """The format of an artifact on disk, told by its name (or, for folders, its marker file)."""
    for fmt in _FORMATS.values():
        if fmt.recognises(Path(path)):
            return fmt
    kinds = ", ".join(s for f in _FORMATS.values() for s in f.suffixes)
    raise ModelLoadError(f"cannot tell the format of {Path(path).name}; expected one of: {kinds}")


def load_exporter(fmt: Format) -> Any:
    return load_ref(fmt.exporter, "exporter")()


def load_runtime(name: str) -> Any:
    _, ref = runtime_ref(name)
    return load_ref(ref, "runtime")()


register_format(Format(
    name="onnx", entry="model.onnx", suffixes=(".onnx",), layout=Layout.FILE,
    exporter="edgeport.exporters.onnx:OnnxExporter",
    runtimes=(("onnxruntime", "edgeport.validation.runtimes.onnxruntime:OnnxRuntime"),),
    precisions=(_P.FP32, _P.FP16, _P.BF16, _P.INT8, _P.INT8_DYNAMIC), options=OnnxOptions,
    inspector="edgeport.validation.inspect.onnx:inspect"))
register_format(Format(
    name="tflite", entry="model.tflite", suffixes=(".tflite",), layout=Layout.FILE,
    exporter="edgeport.exporters.tflite:TFLiteExporter",
    runtimes=(("litert", "edgeport.validation.runtimes.litert:LiteRTRuntime"),
              ("litert-reference", "edgeport.validation.runtimes.litert:LiteRTReferenceRuntime")),
    precisions=(_P.FP32, _P.FP16, _P.INT8, _P.INT8_DYNAMIC), options=TFLiteOptions,
    inspector="edgeport.validation.inspect.tflite:inspect"))
register_format(Format(
    name="coreml", entry="model.mlpackage", suffixes=(".mlpackage", ".mlmodel"), layout=Layout.FOLDER,
    exporter="edgeport.exporters.coreml:CoreMLExporter",
    runtimes=(("coreml-emulator", "edgeport.validation.runtimes.coreml_emulator:CoreMLEmulatorRuntime"),),
    precisions=(_P.FP32, _P.FP16, _P.INT8, _P.LUT8, _P.LUT4), options=CoreMLOptions,
    inspector="edgeport.validation.inspect.coreml:inspect"))
register_format(Format(
    name="tfjs", entry="tfjs/model.json", suffixes=(".json",), layout=Layout.SIBLINGS,
    exporter="edgeport.exporters.tfjs:TFJSExporter",
    runtimes=(("tfjs-node", "edgeport.validation.runtimes.tfjs_node:TFJSNodeRuntime"),
              ("tfjs-node-cpu", "edgeport.validation.runtimes.tfjs_node:TFJSNodeCPURuntime"),
              ("tfjs-chromium", "edgeport.validation.runtimes.tfjs_chromium:TFJSChromiumRuntime")),
    precisions=(_P.FP32, _P.FP16, _P.INT8), options=TFJSOptions,
    inspector="edgeport.validation.inspect.tfjs:inspect", marker="model.json"))
