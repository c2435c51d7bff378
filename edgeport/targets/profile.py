"""Target profiles: TOML data checked completely at load into frozen dataclasses, and the Plan.

Everything a profile names is checked before any work: its format exists, its runtimes belong
to that format, its precisions are ones the format's exporter can make, option types and ranges,
``[device]``, ``[latency]``, ``[budgets]`` and ``[tolerances]`` keys and their units, and its
``[[compression]]`` steps. A mistake is one :class:`ConfigError` line naming the key.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..compression import CompressionStep, parse_step, step_to_dict
from ..compression.request import CompressionRequest, check_order, merged_steps
from ..errors import ConfigError, EdgeportError, ModelLoadError, UnknownNameError
from ..formats import FormatOptions, get_format
from ..precision import Precision
from ..strict import check_keys, coerce, from_table, limits, to_table
from .tolerances import ACCURACY_DROP_CEILING, Tolerance, parse_tolerance, tolerance_for

TARGET_NAMES = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")
#: a profile file larger than this is not a profile
MAX_PROFILE_BYTES = 1 << 20


@dataclass(frozen=True)
class LatencySettings:
    threads: int = field(default=1, metadata=limits(min=1, max=256))
    warmup: int = field(default=10, metadata=limits(min=0, max=100_000))
    runs: int = field(default=100, metadata=limits(min=1, max=1_000_000))


@dataclass(frozen=True)
class Budgets:
    """0 means no budget for size and latency. ``accuracy_drop_max`` is what compression (the
    torch-level steps) may cost against the original model on labelled data — judged apart from
    the precision's conversion tolerance."""

    max_artifact_bytes: int = field(default=0, metadata=limits(min=0, unit="bytes"))
    max_p50_ms: float = field(default=0.0, metadata=limits(min=0.0, unit="ms"))
    accuracy_drop_max: float = field(default=0.01, metadata=limits(
        min=0.0, max=ACCURACY_DROP_CEILING, unit="(a fraction: 0.01 = 1 point)"))
    #: the same for regression outputs: MAE increase as a fraction of the labels' standard deviation
    regression_mae_increase_max: float = field(default=0.05, metadata=limits(
        min=0.0, max=1.0, unit="(a fraction of the labels' standard deviation)"))
    #: a device named in ``[device] estimate``: ``max_p50_ms`` is then checked against that
    #: device's CPU estimate (its upper bound), not this host's measurement
    p50_device: str = ""


@dataclass(frozen=True)
class Device:
    """What the target runs on, as far as validation needs it."""

    name: str = ""
    #: lowest Android API level the app supports (NNAPI coverage is judged there)
    min_api_level: int | None = field(default=None, metadata=limits(min=27, max=40))
    #: named devices (``edgeport devices``) or device TOML files to estimate latency on
    estimate: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.estimate:
            from .devices import load_device

            for name in self.estimate:   # an unknown name or a bad device file: one line naming it
                load_device(name)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in to_table(self).items() if v is not None and v != []}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    format: str
    runtime: str
    precisions: tuple[Precision, ...]
    default_precision: Precision
    compression: tuple[CompressionStep, ...] = ()
    extra_runtimes: tuple[str, ...] = ()
    latency: LatencySettings = LatencySettings()
    budgets: Budgets = Budgets()
    tolerances: Mapping[Precision, Tolerance] = field(default_factory=dict)
    device: Device = Device()
    options: FormatOptions = FormatOptions()
    source: str = "builtin"
    #: kept channel counts of structured pruning are rounded to this multiple (the vector width
    #: the target's CPU kernels work in)
    channel_multiple: int = 8
    #: ``default_precision = "auto"``: exports search the precisions unless one is given
    auto: bool = False

    def __post_init__(self) -> None:
        device = self.budgets.p50_device
        if device and device not in self.device.estimate:
            raise ConfigError(f"profile {self.source}: [budgets] p50_device {device!r} must be one of [device] "
                              f"estimate ({', '.join(self.device.estimate) or 'none given'})")

    @property
    def sparsity(self) -> float:
        return compression_sparsity(self.compression)


@dataclass(frozen=True)
class Plan:
    """The resolved, frozen choice for one export; written into the bundle to reproduce it."""

    target: str
    format: str
    runtime: str
    precision: Precision
    compression: tuple[CompressionStep, ...]
    extra_runtimes: tuple[str, ...]
    latency: LatencySettings
    budgets: Budgets
    tolerance: Tolerance
    device: Device
    options: FormatOptions
    profile_source: str
    channel_multiple: int = 8

    @property
    def sparsity(self) -> float:
        """The requested unstructured sparsity (the report's ``sparsity`` figure)."""
        return compression_sparsity(self.compression)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "format": self.format, "runtime": self.runtime,
                "precision": self.precision.value, "compression": [step_to_dict(s) for s in self.compression],
                "extra_runtimes": list(self.extra_runtimes), "latency": to_table(self.latency),
                "budgets": to_table(self.budgets), "tolerance": self.tolerance.to_dict(),
                "device": self.device.to_dict(), "options": self.options.to_dict(),
                "profile_source": self.profile_source, "channel_multiple": self.channel_multiple}

    @classmethod
    def from_dict(cls, d: Any) -> "Plan":
        """A plan read back from a bundle's manifest (untrusted: every field checked)."""
        try:
            if not isinstance(d, dict):
                raise ConfigError("not a table")
            check_keys("plan", d, ["target", "format", "runtime", "precision", "compression", "extra_runtimes",
                                   "latency", "budgets", "tolerance", "device", "options", "profile_source",
                                   "channel_multiple"])
            fmt = get_format(coerce("plan", "format", d.get("format"), str))
            runtime = coerce("plan", "runtime", d.get("runtime"), str)
            extra = coerce("plan", "extra_runtimes", d.get("extra_runtimes", []), tuple[str, ...])
            _check_runtimes("plan", fmt.name, runtime, extra)
            steps = d.get("compression", [])
            if not isinstance(steps, list):
                raise ConfigError("plan: compression must be a list")
            return cls(target=coerce("plan", "target", d.get("target"), str), format=fmt.name, runtime=runtime,
                       precision=Precision.parse(d.get("precision")),
                       compression=tuple(parse_step(s, f"plan compression[{i}]") for i, s in enumerate(steps)),
                       extra_runtimes=extra, latency=from_table(LatencySettings, d.get("latency"), "plan latency"),
                       budgets=from_table(Budgets, d.get("budgets"), "plan budgets"),
                       tolerance=parse_tolerance(d.get("tolerance") or {}, "plan tolerance"),
                       device=from_table(Device, d.get("device"), "plan device"),
                       options=fmt.options.from_dict(d.get("options"), "plan options"),
                       profile_source=coerce("plan", "profile_source", d.get("profile_source", ""), str),
                       channel_multiple=_channel_multiple("plan", d.get("channel_multiple", 8)))
        except EdgeportError as exc:
            raise ModelLoadError(f"the bundle's plan is malformed: {exc}") from exc
        except TypeError as exc:
            raise ModelLoadError(f"the bundle's plan is malformed: {exc}") from exc


def compression_sparsity(steps: Sequence[CompressionStep]) -> float:
    return max((float(getattr(s, "sparsity", 0.0)) for s in steps), default=0.0)


_TOP_KEYS = ["name", "description", "format", "runtime", "precisions", "default_precision", "sparsity",
             "pruning_scope", "compression", "extra_runtimes", "latency", "budgets", "tolerances", "device",
             "options", "channel_multiple"]


def _channel_multiple(where: str, value: Any) -> int:
    n = coerce(where, "channel_multiple", value, int)
    if not 1 <= n <= 256:
        raise ConfigError(f"{where}: channel_multiple {n} must be between 1 and 256")
    return n


def _check_runtimes(where: str, fmt_name: str, runtime: str, extra: Sequence[str]) -> None:
    fmt = get_format(fmt_name)
    for key, name in [("runtime", runtime)] + [("extra_runtimes", r) for r in extra]:
        if name not in fmt.runtime_names:
            raise ConfigError(f"{where}: {key} {name!r} is not a runtime of the {fmt.name} format; "
                              f"known: {', '.join(fmt.runtime_names)}")


def parse_profile(data: Mapping[str, Any], source: str) -> Profile:
    """Check a profile's TOML table completely; every problem names the key."""
    where = f"profile {source}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table")
    check_keys(where, data, _TOP_KEYS)
    for key in ("name", "format", "precisions", "default_precision"):
        if key not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
    name = coerce(where, "name", data["name"], str)
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, '-', '_' or '.'")
    fmt = get_format(coerce(where, "format", data["format"], str))
    runtime = coerce(where, "runtime", data.get("runtime", fmt.default_runtime), str)
    extra = coerce(where, "extra_runtimes", data.get("extra_runtimes", []), tuple[str, ...])
    _check_runtimes(where, fmt.name, runtime, extra)
    precisions = tuple(Precision.parse(p) for p in coerce(where, "precisions", data["precisions"], tuple[str, ...]))
    if not precisions:
        raise ConfigError(f"{where}: precisions is empty")
    for p in precisions:
        if p not in fmt.precisions:
            raise ConfigError(f"{where}: precisions: the {fmt.name} exporter cannot make {p.value!r}; "
                              f"it makes: {', '.join(x.value for x in fmt.precisions)}")
    default_name = coerce(where, "default_precision", data["default_precision"], str)
    # "auto": the export searches the precisions (see edgeport.search); fp32 stands in as the default
    auto = default_name == "auto"
    default = precisions[0] if auto else Precision.parse(default_name)
    if default not in precisions:
        raise ConfigError(f"{where}: default_precision {default.value!r} is not among its precisions "
                          f"{[p.value for p in precisions]}")
    tolerances: dict[Precision, Tolerance] = {}
    tol_table = data.get("tolerances", {})
    if not isinstance(tol_table, Mapping):
        raise ConfigError(f"{where}: [tolerances] must be a table of tables")
    for prec_name, table in tol_table.items():
        prec = Precision.parse(prec_name)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [tolerances.{prec_name}] must be a table")
        tolerances[prec] = tolerance_for(prec, table, f"{where} [tolerances.{prec_name}]")
    return Profile(name=name, description=coerce(where, "description", data.get("description", ""), str),
                   format=fmt.name, runtime=runtime, precisions=precisions, default_precision=default,
                   compression=_compression(data, where), extra_runtimes=extra,
                   latency=from_table(LatencySettings, data.get("latency"), f"{where} [latency]"),
                   budgets=from_table(Budgets, data.get("budgets"), f"{where} [budgets]"),
                   tolerances=tolerances, device=from_table(Device, data.get("device"), f"{where} [device]"),
                   options=fmt.options.from_dict(data.get("options"), f"{where} [options]"), source=source,
                   channel_multiple=_channel_multiple(where, data.get("channel_multiple", 8)), auto=auto)


def _compression(data: Mapping[str, Any], where: str) -> tuple[CompressionStep, ...]:
    """``[[compression]]`` tables in order; the top-level ``sparsity`` / ``pruning_scope`` keys are
    a shorthand for one magnitude-pruning step."""
    tables = data.get("compression", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: compression must be an array of tables ([[compression]])")
    steps = [parse_step(t, f"{where} [[compression]] #{i + 1}") for i, t in enumerate(tables)]
    if "sparsity" in data or "pruning_scope" in data:
        if any(s.kind == "magnitude" for s in steps):
            raise ConfigError(f"{where}: sparsity is given both at the top level and in [[compression]]")
        table = {"kind": "magnitude", "sparsity": data.get("sparsity", 0.0),
                 "scope": data.get("pruning_scope", "layer")}
        step = parse_step(table, f"{where} (sparsity / pruning_scope)")
        if getattr(step, "sparsity", 0.0) > 0:
            steps.insert(0, step)
    try:
        check_order(steps)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tuple(steps)


def builtin_profiles() -> dict[str, Profile]:
    out = {}
    for name in TARGET_NAMES:
        text = resources.files("edgeport.targets").joinpath("profiles", f"{name}.toml").read_text()
        out[name] = parse_profile(tomllib.loads(text), f"builtin:{name}")
    return out


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by target name, or a user's TOML file."""
    s = str(name_or_path)
    if s.endswith(".toml"):
        p = Path(s)
        try:
            if p.stat().st_size > MAX_PROFILE_BYTES:
                raise ConfigError(f"profile {p.name} is larger than {MAX_PROFILE_BYTES} bytes")
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"profile file not found: {p}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read profile {p}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"profile {p.name} is not valid TOML: {exc}") from exc
        return parse_profile(data, str(p))
    profiles = builtin_profiles()
    if s not in profiles:
        raise UnknownNameError("target", s, list(profiles))
    return profiles[s]


def resolve_plan(profile: Profile, precision: str | None = None,
                 compression: CompressionRequest | None = None) -> Plan:
    """Apply CLI overrides within what the target allows; refuse the impossible, listing the possible.

    ``compression`` (flags such as ``--sparsity``, ``--prune-channels``, ``--recover``) changes or
    adds the profile's steps; a level of 0 removes one (see :mod:`edgeport.compression.request`).
    """
    if precision is not None and not str(precision).strip():
        raise ConfigError("--precision is empty; give one of: " + ", ".join(p.value for p in profile.precisions))
    prec = profile.default_precision if precision is None else Precision.parse(precision)
    if prec not in profile.precisions:
        raise ConfigError(f"target {profile.name} does not support precision {prec.value!r}; "
                          f"supported: {', '.join(p.value for p in profile.precisions)}")
    steps = merged_steps(profile.compression, compression)
    tolerance = profile.tolerances.get(prec) or tolerance_for(prec)
    return Plan(target=profile.name, format=profile.format, runtime=profile.runtime, precision=prec,
                compression=steps, extra_runtimes=profile.extra_runtimes, latency=profile.latency,
                budgets=profile.budgets, tolerance=tolerance, device=profile.device, options=profile.options,
                profile_source=profile.source, channel_multiple=profile.channel_multiple)


def with_devices(plan: Plan, devices: Sequence[str] | None) -> Plan:
    """``plan`` also estimating latency on ``devices`` (``--device``; checked like the profile's)."""
    if not devices:
        return plan
    names = tuple(dict.fromkeys((*plan.device.estimate, *devices)))
    return replace(plan, device=replace(plan.device, estimate=names))


def with_options(plan: Plan, **options: Any) -> Plan:
    """``plan`` with some options changed (checked like a profile's)."""
    merged = {**plan.options.to_dict(), **options}
    return replace(plan, options=type(plan.options).from_dict(merged, "options"))
