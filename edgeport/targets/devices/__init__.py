"""Devices as data: the phones and boards latency is estimated for (``devices/*.toml``) and the
CPU cores they are built from (``../cores.toml``).

Every file is read strictly, like a profile: every key is checked, each mistake is one
:class:`ConfigError` line naming the key, a file is bounded in size, and every derived number a
file states (``[derived.<key>] value``, with its ``formula``) is recomputed from the facts and
refused when it disagrees. A user's own device file (``--device my_phone.toml``) is read by the
same rules.
"""
from __future__ import annotations

import contextlib
import contextvars
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import ConfigError, UnknownNameError
from ...strict import check_keys, coerce, from_table, limits

#: a device or cores file larger than this is not one
MAX_DEVICE_BYTES = 64 * 1024
MAX_TEXT = 2000
PRECISION_KEYS = {"fp32": "fp32_flop_per_cycle", "fp16": "fp16_flop_per_cycle", "int8": "int8_op_per_cycle"}
#: the derived numbers a device file may state, and the precision each one is the peak of
DERIVED = {"peak_fp32_gflops": "fp32", "peak_fp16_gflops": "fp16", "peak_int8_gops": "int8", "bandwidth_gbs": None}
ACCELERATOR_KINDS = ("gpu", "npu", "dsp", "tpu", "ane")
DELEGATES = ("", "litert-gpu", "litert-nnapi", "edgetpu", "qnn-npu", "coreml-gpu", "coreml-ane")


@dataclass(frozen=True)
class CoreSpec:
    """Peak arithmetic of one core per clock cycle; None: not published."""

    name: str = ""
    fp32_flop_per_cycle: float | None = field(default=None, metadata=limits(min=1, max=1024))
    fp16_flop_per_cycle: float | None = field(default=None, metadata=limits(min=1, max=2048))
    int8_op_per_cycle: float | None = field(default=None, metadata=limits(min=1, max=8192))
    dot_product: bool = False
    basis: str = field(default="", metadata=limits(choices=("measured", "derived", "assumed")))
    verified: bool = False
    source: str = ""

    def per_cycle(self, precision: str) -> float | None:
        return getattr(self, PRECISION_KEYS[precision])


@dataclass(frozen=True)
class Cluster:
    core: str = ""
    count: int = field(default=1, metadata=limits(min=1, max=256))
    ghz: float | None = field(default=None, metadata=limits(min=0.1, max=10.0, unit="GHz"))


@dataclass(frozen=True)
class Memory:
    type: str = ""
    bus_bits: int | None = field(default=None, metadata=limits(min=8, max=1024))
    mt_s: int | None = field(default=None, metadata=limits(min=100, max=20_000, unit="MT/s"))
    bandwidth_gbs: float | None = field(default=None, metadata=limits(min=0.1, max=2000.0, unit="GB/s"))
    source: str = ""

    @property
    def peak_gbs(self) -> float | None:
        """Stated bandwidth, else bus width / 8 × transfer rate."""
        if self.bandwidth_gbs is not None:
            return self.bandwidth_gbs
        if self.bus_bits and self.mt_s:
            return self.bus_bits / 8 * self.mt_s / 1000
        return None


@dataclass(frozen=True)
class Accelerator:
    kind: str = field(default="gpu", metadata=limits(choices=ACCELERATOR_KINDS))
    name: str = ""
    #: the runtime/delegate name published rows use for it ("" = none runs ML models here)
    delegate: str = field(default="", metadata=limits(choices=DELEGATES))
    tops_int8: float | None = field(default=None, metadata=limits(min=0.0, max=10_000.0, unit="TOPS"))
    source: str = ""


@dataclass(frozen=True)
class Derived:
    value: float = field(default=0.0, metadata=limits(min=0.0))
    formula: str = ""


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    display: str
    soc: str
    platform: str
    threads: int
    threads_basis: str
    sources: tuple[str, ...]
    clusters: tuple[Cluster, ...]
    memory: Memory
    accelerators: tuple[Accelerator, ...]
    derived: Mapping[str, Derived]
    notes: str = ""
    published_as: tuple[str, ...] = ()
    origin: str = "builtin"

    def thread_cores(self, threads: int | None = None) -> list[tuple[Cluster, CoreSpec]]:
        """The cores ``threads`` threads run on: the fastest first (fp32 peak per core; cores of
        unknown speed last), as the TFLite benchmark pins its threads to the big cores."""
        cores = core_specs()
        one = [(c, cores[c.core]) for c in self.clusters for _ in range(c.count)]
        one.sort(key=lambda cc: -((cc[0].ghz or 0.0) * (cc[1].fp32_flop_per_cycle or 0.0)))
        return one[: threads or self.threads]

    def peak(self, precision: str, threads: int | None = None) -> float | None:
        """Peak GFLOP/s (GOP/s for int8) of the cores ``threads`` threads run on; None when a
        clock or a per-cycle figure they need is not published."""
        total = 0.0
        for cluster, core in self.thread_cores(threads):
            per_cycle = core.per_cycle(precision)
            if cluster.ghz is None or per_cycle is None:
                return None
            total += cluster.ghz * per_cycle
        return total

    def unverified(self, threads: int | None = None) -> list[str]:
        """Cores behind a spec-based estimate whose throughput is assumed, not measured or published."""
        return sorted({c.core for c, spec in self.thread_cores(threads) if not spec.verified})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "display": self.display, "soc": self.soc, "platform": self.platform,
                "threads": self.threads, "peak_fp32_gflops": _round(self.peak("fp32")),
                "peak_int8_gops": _round(self.peak("int8")), "bandwidth_gbs": _round(self.memory.peak_gbs),
                "accelerators": [a.name for a in self.accelerators], "origin": self.origin}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _text(where: str, key: str, value: Any) -> str:
    s = coerce(where, key, value, str)
    if len(s) > MAX_TEXT:
        raise ConfigError(f"{where}: {key} is longer than {MAX_TEXT} characters")
    return s


def _read_toml(path: Path | None, text: str | None, where: str) -> dict[str, Any]:
    try:
        if text is None:
            assert path is not None
            if path.stat().st_size > MAX_DEVICE_BYTES:
                raise ConfigError(f"{where} is larger than {MAX_DEVICE_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        if len(text.encode()) > MAX_DEVICE_BYTES:
            raise ConfigError(f"{where} is larger than {MAX_DEVICE_BYTES} bytes")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc


def _tables(where: str, data: Mapping[str, Any], key: str, most: int) -> list[Mapping[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError(f"{where}: {key} must be an array of tables ([[{key}]])")
    if len(tables) > most:
        raise ConfigError(f"{where}: more than {most} [[{key}]] tables")
    return tables


@lru_cache(maxsize=1)
def core_specs() -> dict[str, CoreSpec]:
    """Every core of ``cores.toml`` by name."""
    text = resources.files("edgeport.targets").joinpath("cores.toml").read_text(encoding="utf-8")
    data = _read_toml(None, text, "cores.toml")
    check_keys("cores.toml", data, ["version", "cores"])
    cores = data.get("cores", {})
    if not isinstance(cores, Mapping):
        raise ConfigError("cores.toml: [cores] must be a table of tables")
    out = {}
    for name, table in cores.items():
        spec = from_table(CoreSpec, {**table, "name": name} if isinstance(table, Mapping) else table,
                          f"cores.toml [cores.{name}]")
        out[name] = spec
    return out


_DEVICE_KEYS = ["name", "display", "soc", "platform", "threads", "threads_basis", "sources", "notes",
                "published_as", "clusters", "memory", "accelerators", "derived"]


def parse_device(data: Mapping[str, Any], where: str, origin: str = "builtin") -> DeviceSpec:
    """A device table checked completely; its stated derived numbers recomputed."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table")
    check_keys(where, data, _DEVICE_KEYS)
    for key in ("name", "clusters"):
        if key not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
    name = _text(where, "name", data["name"])
    if not name or not all(c.isalnum() or c in "-_." for c in name) or len(name) > 64:
        raise ConfigError(f"{where}: name {name!r} must be up to 64 letters, digits, '-', '_' or '.'")
    platform = coerce(where, "platform", data.get("platform", "android"), str,
                      limits(choices=("android", "ios", "linux")))
    threads = coerce(where, "threads", data.get("threads", 4), int, limits(min=1, max=256))
    sources = coerce(where, "sources", data.get("sources", []), tuple[str, ...])
    if not sources:
        raise ConfigError(f"{where}: sources is empty: every device fact needs its source")
    cores = core_specs()
    clusters = []
    for i, t in enumerate(_tables(where, data, "clusters", 16)):
        c = from_table(Cluster, t, f"{where} [[clusters]] #{i + 1}")
        if c.core not in cores:
            raise UnknownNameError(f"core ({where} [[clusters]] #{i + 1})", c.core, sorted(cores))
        clusters.append(c)
    if not clusters:
        raise ConfigError(f"{where}: no [[clusters]]")
    if threads > sum(c.count for c in clusters):
        raise ConfigError(f"{where}: threads {threads} is more than its {sum(c.count for c in clusters)} cores")
    accelerators = tuple(from_table(Accelerator, t, f"{where} [[accelerators]] #{i + 1}")
                         for i, t in enumerate(_tables(where, data, "accelerators", 16)))
    derived_table = data.get("derived", {})
    if not isinstance(derived_table, Mapping):
        raise ConfigError(f"{where}: [derived] must be a table of tables")
    check_keys(f"{where} [derived]", derived_table, list(DERIVED))
    derived = {k: from_table(Derived, v, f"{where} [derived.{k}]") for k, v in derived_table.items()}
    spec = DeviceSpec(name=name, display=_text(where, "display", data.get("display", name)),
                      soc=_text(where, "soc", data.get("soc", "")), platform=platform, threads=threads,
                      threads_basis=_text(where, "threads_basis", data.get("threads_basis", "")),
                      sources=tuple(_text(where, "sources", s) for s in sources), clusters=tuple(clusters),
                      memory=from_table(Memory, data.get("memory"), f"{where} [memory]"),
                      accelerators=accelerators, derived=derived, notes=_text(where, "notes", data.get("notes", "")),
                      published_as=coerce(where, "published_as", data.get("published_as", []), tuple[str, ...]),
                      origin=origin)
    for key, d in derived.items():
        computed = spec.memory.peak_gbs if DERIVED[key] is None else spec.peak(DERIVED[key])
        if computed is None:
            raise ConfigError(f"{where}: derived.{key} is stated ({d.value}) but the facts it is computed "
                              "from are not all given")
        if abs(computed - d.value) > max(0.05, 0.002 * computed):
            raise ConfigError(f"{where}: derived.{key} says {d.value} but its facts give {computed:.2f} "
                              f"({d.formula or 'no formula given'})")
    return spec


@lru_cache(maxsize=1)
def builtin_devices() -> dict[str, DeviceSpec]:
    folder = resources.files("edgeport.targets").joinpath("devices")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            spec = parse_device(_read_toml(None, entry.read_text(encoding="utf-8"), f"device {entry.name}"),
                                f"device {entry.name}")
            if spec.name != entry.name[: -len(".toml")]:
                raise ConfigError(f"device {entry.name}: name {spec.name!r} differs from its file name")
            out[spec.name] = spec
    return out


def load_device(name_or_path: str | Path) -> DeviceSpec:
    """A built-in device by name, or a user's device TOML file (read as untrusted data)."""
    s = str(name_or_path)
    if s.endswith(".toml"):
        p = Path(s)
        return parse_device(_read_toml(p, None, f"device file {p.name}"), f"device file {p.name}", origin=str(p))
    devices = builtin_devices()
    if s not in devices:
        raise UnknownNameError("device", s, list(devices))
    return devices[s]


_REQUESTED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("edgeport_estimate_devices", default=())


@contextlib.contextmanager
def estimating_on(devices: Sequence[str]) -> Iterator[None]:
    """Inside this block every export also estimates latency on ``devices`` (names or device
    TOML files, checked here): ``with estimating_on(["pixel-4"]): edgeport.export(...)``."""
    names = tuple(devices)
    for name in names:
        load_device(name)
    token = _REQUESTED.set(names)
    try:
        yield
    finally:
        _REQUESTED.reset(token)


def requested_devices() -> tuple[str, ...]:
    """The devices of the innermost :func:`estimating_on` block (none outside one)."""
    return _REQUESTED.get()
