"""Target profiles: TOML data loaded strictly into frozen dataclasses, and the resolved Plan."""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownNameError

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-dynamic", "lut4", "lut8")
SCOPES = ("layer", "global")
TARGET_NAMES = ("local-onnx", "android-tflite", "ios-coreml", "browser-tfjs")

# Exporter/runtime options a profile may set under [options], per format. Profiles are data:
# they name options, the exporter of the format reads them.
OPTION_KEYS: dict[str, frozenset[str]] = {
    "onnx": frozenset({"opset", "per_channel", "calibration_samples", "quant_preprocess", "int8_guard"}),
    "tflite": frozenset({"int8_io", "calibration_samples", "min_api_level", "int8_guard"}),
    "coreml": frozenset({"deployment_target", "compute_units", "weight_threshold", "activation_quantization",
                         "calibration_samples"}),
    "tfjs": frozenset({"timeout_s", "calibration_samples"}),
}

TOLERANCE_KEYS = ("cosine_min", "sqnr_db_min", "max_abs_rel_max", "top1_agreement_min", "accuracy_drop_max")


@dataclass(frozen=True)
class Tolerance:
    """Limits for one precision. ``max_abs_rel`` is max |a-b| over max |reference|."""

    cosine_min: float
    sqnr_db_min: float
    max_abs_rel_max: float
    top1_agreement_min: float
    accuracy_drop_max: float


@dataclass(frozen=True)
class LatencySettings:
    threads: int = 1
    warmup: int = 10
    runs: int = 100


@dataclass(frozen=True)
class Budgets:
    """0 means no budget."""

    max_artifact_bytes: int = 0
    max_p50_ms: float = 0.0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    format: str
    runtime: str
    precisions: tuple[str, ...]
    default_precision: str
    sparsity: float = 0.0
    pruning_scope: str = "layer"
    extra_runtimes: tuple[str, ...] = ()
    latency: LatencySettings = LatencySettings()
    budgets: Budgets = Budgets()
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"


@dataclass(frozen=True)
class Plan:
    """The resolved, frozen choice for one export; written into the bundle to reproduce it."""

    target: str
    format: str
    runtime: str
    precision: str
    sparsity: float
    pruning_scope: str
    extra_runtimes: tuple[str, ...]
    latency: LatencySettings
    budgets: Budgets
    tolerance: Tolerance
    device: dict[str, Any]
    options: dict[str, Any]
    profile_source: str

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra_runtimes"] = list(self.extra_runtimes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        return cls(**{**d, "extra_runtimes": tuple(d.get("extra_runtimes", ())),
                      "latency": LatencySettings(**d["latency"]), "budgets": Budgets(**d["budgets"]),
                      "tolerance": Tolerance(**d["tolerance"])})


_TOP_KEYS = {"name", "description", "format", "runtime", "precisions", "default_precision", "sparsity",
             "pruning_scope", "extra_runtimes", "latency", "budgets", "tolerances", "device", "options"}


def _strict(section: str, table: dict[str, Any], known: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"profile {section}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate a profile's TOML table; every problem names the key."""
    _strict(f"{source}", data, _TOP_KEYS)
    for key in ("name", "format", "runtime", "precisions", "default_precision"):
        if key not in data:
            raise ConfigError(f"profile {source}: missing key {key!r}")
    fmt = data["format"]
    if fmt not in OPTION_KEYS:
        raise UnknownNameError("format", fmt, list(OPTION_KEYS))
    precisions = tuple(data["precisions"])
    for p in precisions:
        if p not in PRECISIONS:
            raise UnknownNameError("precision", p, PRECISIONS)
    if data["default_precision"] not in precisions:
        raise ConfigError(f"profile {source}: default_precision {data['default_precision']!r} "
                          f"is not among its precisions {list(precisions)}")
    sparsity = float(data.get("sparsity", 0.0))
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"profile {source}: sparsity must be in [0, 1), got {sparsity}")
    scope = data.get("pruning_scope", "layer")
    if scope not in SCOPES:
        raise UnknownNameError("pruning scope", scope, SCOPES)
    lat = data.get("latency", {})
    _strict(f"{source} [latency]", lat, {"threads", "warmup", "runs"})
    bud = data.get("budgets", {})
    _strict(f"{source} [budgets]", bud, {"max_artifact_bytes", "max_p50_ms"})
    tol = data.get("tolerances", {})
    for prec, table in tol.items():
        if prec not in PRECISIONS:
            raise UnknownNameError("precision in [tolerances]", prec, PRECISIONS)
        _strict(f"{source} [tolerances.{prec}]", table, set(TOLERANCE_KEYS))
    opts = data.get("options", {})
    _strict(f"{source} [options]", opts, OPTION_KEYS[fmt])
    return Profile(name=data["name"], description=data.get("description", ""), format=fmt,
                   runtime=data["runtime"], precisions=precisions,
                   default_precision=data["default_precision"], sparsity=sparsity, pruning_scope=scope,
                   extra_runtimes=tuple(data.get("extra_runtimes", ())),
                   latency=LatencySettings(**lat), budgets=Budgets(**bud),
                   tolerances={k: dict(v) for k, v in tol.items()}, device=dict(data.get("device", {})),
                   options=dict(opts), source=source)


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
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"profile file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"profile {p.name} is not valid TOML: {exc}") from exc
        return parse_profile(data, str(p))
    profiles = builtin_profiles()
    if s not in profiles:
        raise UnknownNameError("target", s, list(profiles))
    return profiles[s]


def resolve_plan(profile: Profile, precision: str | None = None, sparsity: float | None = None,
                 pruning_scope: str | None = None) -> Plan:
    """Apply CLI overrides within what the target allows; refuse the impossible, listing the possible."""
    from ..validation.tolerances import tolerance_for

    prec = precision or profile.default_precision
    if prec not in PRECISIONS:
        raise UnknownNameError("precision", prec, PRECISIONS)
    if prec not in profile.precisions:
        raise ConfigError(f"target {profile.name} does not support precision {prec!r}; "
                          f"supported: {', '.join(profile.precisions)}")
    sp = profile.sparsity if sparsity is None else float(sparsity)
    if not 0.0 <= sp < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sp}")
    scope = pruning_scope or profile.pruning_scope
    if scope not in SCOPES:
        raise UnknownNameError("pruning scope", scope, SCOPES)
    return Plan(target=profile.name, format=profile.format, runtime=profile.runtime, precision=prec,
                sparsity=sp, pruning_scope=scope, extra_runtimes=profile.extra_runtimes,
                latency=profile.latency, budgets=profile.budgets,
                tolerance=tolerance_for(prec, profile.tolerances.get(prec)), device=profile.device,
                options=profile.options, profile_source=profile.source)


def with_options(plan: Plan, **options: Any) -> Plan:
    return replace(plan, options={**plan.options, **options})
