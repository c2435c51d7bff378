"""Device facts as data: every file loads strictly, every derived number is recomputed here, the
published table and the published architectures agree with their sources."""
from __future__ import annotations

import json
import tomllib
from importlib import resources

import pytest
from cli_helpers import assert_one_line_error, run_cli

from edgeport.errors import ConfigError, UnknownNameError
from edgeport.targets.devices import (
    builtin_devices,
    core_specs,
    load_device,
    parse_device,
)
from edgeport.targets.published import parse_table, published_table
from edgeport.validation.estimate.kernels import summary
from edgeport.validation.estimate.reference_models import BUILDERS, reference_kernels

REQUIRED = {"pixel-4", "pixel-7", "pixel-8", "galaxy-s23", "galaxy-s24", "galaxy-a14", "iphone-13",
            "iphone-15-pro", "raspberry-pi-4", "raspberry-pi-5"}
#: (core, GFLOP/s or GOP/s measured by cpufp on one core, GHz it ran at, key) as the sources state
MEASURED = [("cortex-a55", 14.6, 1.8, "fp32_flop_per_cycle"), ("cortex-a55", 58.4, 1.8, "int8_op_per_cycle"),
            ("cortex-a72", 11.958, 1.5, "fp32_flop_per_cycle"), ("cortex-a76", 38.369, 2.4, "fp32_flop_per_cycle"),
            ("cortex-a76", 76.738, 2.4, "fp16_flop_per_cycle"), ("cortex-a76", 153.48, 2.4, "int8_op_per_cycle"),
            ("cortex-a720", 41.563, 2.6, "fp32_flop_per_cycle"), ("cortex-a720", 166.24, 2.6, "int8_op_per_cycle"),
            ("cortex-a520", 14.322, 1.8, "fp32_flop_per_cycle"), ("cortex-a520", 57.371, 1.8, "int8_op_per_cycle")]


def _raw(name: str) -> dict:
    return tomllib.loads(resources.files("edgeport.targets").joinpath("devices", f"{name}.toml").read_text())


def test_the_required_devices_are_there_with_sources():
    devices = builtin_devices()
    assert REQUIRED <= set(devices)
    assert all(d.sources for d in devices.values())
    assert [c.core for c in devices["galaxy-a14"].clusters] == ["cortex-a55"]     # the low-end, A55-only phone


@pytest.mark.parametrize("core, measured, ghz, key", MEASURED)
def test_measured_per_cycle_figures_are_the_measurement_over_the_clock(core, measured, ghz, key):
    spec = core_specs()[core]
    assert spec.basis == "measured" and spec.verified
    assert round(measured / ghz) == getattr(spec, key)


@pytest.mark.parametrize("name", sorted(REQUIRED | {"pixel-3"}))
def test_derived_numbers_recomputed_from_the_raw_file(name):
    """Peak = Σ GHz × per-cycle figure over the `threads` fastest cores; bandwidth = bits / 8 × MT/s."""
    raw, cores = _raw(name), tomllib.loads(resources.files("edgeport.targets").joinpath("cores.toml").read_text())
    per_core = []
    for c in raw["clusters"]:
        per_core += [(c.get("ghz"), cores["cores"][c["core"]])] * c["count"]
    per_core.sort(key=lambda gc: -((gc[0] or 0) * gc[1].get("fp32_flop_per_cycle", 0)))
    chosen = per_core[: raw["threads"]]
    keys = {"peak_fp32_gflops": "fp32_flop_per_cycle", "peak_int8_gops": "int8_op_per_cycle"}
    for key, stated in raw.get("derived", {}).items():
        if key == "bandwidth_gbs":
            m = raw["memory"]
            value = m.get("bandwidth_gbs") or m["bus_bits"] / 8 * m["mt_s"] / 1000
        else:
            value = sum(ghz * spec[keys[key]] for ghz, spec in chosen)
        assert value == pytest.approx(stated["value"], abs=0.06), key
        assert stated["formula"]
    spec = load_device(name)
    if "peak_fp32_gflops" in raw.get("derived", {}):
        assert spec.peak("fp32") == pytest.approx(raw["derived"]["peak_fp32_gflops"]["value"], abs=0.06)


def test_pixel_4_peak_is_its_four_a76_cores():
    d = load_device("pixel-4")
    assert [c.core for c, _ in d.thread_cores()] == ["cortex-a76"] * 4
    assert d.peak("fp32") == pytest.approx(16 * (2.84 + 3 * 2.42))
    assert d.memory.peak_gbs == pytest.approx(34.128)


def test_unpublished_specs_stay_unknown():
    assert load_device("iphone-13").peak("fp32") is None            # Apple publishes no clock
    assert load_device("raspberry-pi-4").peak("int8") is None       # A72: no dot product
    assert load_device("pixel-8").unverified() == ["cortex-a715", "cortex-x3"]


def _device(**over) -> dict:
    base = {"name": "my-phone", "sources": ["my lab"], "threads": 2,
            "clusters": [{"core": "cortex-a76", "count": 2, "ghz": 2.0}]}
    base.update(over)
    return base


@pytest.mark.parametrize("change, needle", [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"clusters": [{"core": "cortex-a76", "count": 2, "ghz": "fast"}]}, "ghz must be a finite number"),
    ({"clusters": [{"core": "cortex-a99", "count": 2, "ghz": 2.0}]}, "unknown core"),
    ({"clusters": [{"core": "cortex-a76", "count": 2, "ghz": 2.0, "turbo": True}]}, "unknown key 'turbo'"),
    ({"threads": 8}, "threads 8 is more than its 2 cores"),
    ({"sources": []}, "sources is empty"),
    ({"derived": {"peak_fp32_gflops": {"value": 100.0, "formula": "made up"}}}, "derived.peak_fp32_gflops says 100.0"),
    ({"accelerators": [{"kind": "gpu", "name": "x", "delegate": "cuda"}]}, "delegate must be one of"),
    ({"name": "../../etc"}, "must be up to 64 letters"),
])
def test_untrusted_device_tables_are_refused_naming_the_key(change, needle):
    with pytest.raises(ConfigError, match=None) as exc:
        parse_device(_device(**change), "device file my.toml", origin="my.toml")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_users_device_file_loads_and_a_huge_one_is_refused(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\nsources = ["lab"]\nthreads = 2\n[[clusters]]\ncore = "cortex-a76"\ncount = 2\n'
                    'ghz = 2.0\n[derived.peak_fp32_gflops]\nvalue = 64.0\nformula = "2 × 2.0 × 16"\n')
    assert load_device(str(good)).peak("fp32") == 64.0
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 70_000 + "\n" + good.read_text())
    with pytest.raises(ConfigError, match="larger than"):
        load_device(str(big))
    with pytest.raises(UnknownNameError, match="unknown device 'pixel-44'"):
        load_device("pixel-44")


def test_cli_refuses_a_bad_device_file_before_any_work(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nsources = ["x"]\nflops = 9\n[[clusters]]\ncore = "cortex-a76"\n')
    proc = run_cli("export", "sample:digits_cnn", "--target", "local-onnx", "--device", str(bad), "-o", str(tmp_path / "o"))
    assert_one_line_error(proc, "unknown key 'flops'")
    assert not (tmp_path / "o").exists()


def test_edgeport_devices_lists_them():
    proc = run_cli("devices")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["DEVICE", "NAME"]
    assert {ln.split()[0] for ln in lines[1:]} == set(builtin_devices())
    pixel4 = next(ln for ln in lines if ln.startswith("pixel-4 "))
    assert "161.6" in pixel4 and "646.4" in pixel4
    assert "n/p" in next(ln for ln in lines if ln.startswith("iphone-13 "))
    doc = json.loads(run_cli("devices", "--json").stdout)
    assert {d["name"]: d["peak_fp32_gflops"] for d in doc}["raspberry-pi-5"] == 153.6


def test_published_table_is_strict():
    table = published_table()
    assert table.version == 1 and len(table.rows) >= 60
    data = tomllib.loads(resources.files("edgeport.targets").joinpath("latencies.toml").read_text())
    data["rows"][0]["device"] = "pixle-4"
    with pytest.raises(ConfigError, match="unknown device 'pixle-4'"):
        parse_table(data, set(builtin_devices()))
    data["rows"][0].update(device="pixel-4", latency=3)
    with pytest.raises(ConfigError, match="unknown key 'latency'"):
        parse_table(data, set(builtin_devices()))


def test_every_row_names_a_source_and_lite0_pixel4_is_there():
    table = published_table()
    assert all(r.source in table.sources for r in table.rows)
    lite0 = {(r.runtime, r.precision): r.ms for r in table.rows if r.model == "efficientnet-lite0"}
    assert lite0[("litert-cpu", "fp32")] == 12.0 and lite0[("litert-cpu", "int8")] == 6.5


def test_architectures_match_their_published_sizes():
    """MACs of the layouts against the sources' figures. EfficientNet-Lite's published MAdds run
    3-6 % above the convolutions' own multiply-adds (the README does not say what else it counts);
    the ratio is steady across the family, so the family's scaling is right."""
    macs = {m: summary(reference_kernels(m))["total"] / 2e6 for m in BUILDERS}
    params = {m: sum(k.weight_elems for k in reference_kernels(m)) / 1e6 for m in BUILDERS}
    assert macs["mobilenet-v1"] == pytest.approx(569, rel=0.01)
    assert macs["mobilenet-v2"] == pytest.approx(300, rel=0.01)
    assert macs["resnet-50"] == pytest.approx(4090, rel=0.01) and params["resnet-50"] == pytest.approx(25.5, rel=0.01)
    assert params["inception-v4"] == pytest.approx(42.7, rel=0.01)
    assert params["inception-resnet-v2"] == pytest.approx(55.8, rel=0.01)
    table = published_table()
    ratios = [macs[f"efficientnet-lite{i}"] / table.models[f"efficientnet-lite{i}"].published_macs_m for i in range(5)]
    assert all(0.94 <= r <= 0.98 for r in ratios), ratios
    assert params["efficientnet-lite0"] == pytest.approx(4.65, rel=0.02)   # the sample's 4.65 M, BN aside


def test_a_profile_may_name_devices_and_a_plan_keeps_them(tmp_path):
    from edgeport.targets.profile import Plan, load_profile, resolve_plan, with_devices

    text = (resources.files("edgeport.targets").joinpath("profiles", "local-onnx.toml").read_text()
            .replace('name = "local-onnx"', 'name = "my-onnx"'))
    good = tmp_path / "good.toml"
    good.write_text(text + '\n[device]\nestimate = ["pixel-7"]\n' if "[device]" not in text else
                    text.replace("[device]", '[device]\nestimate = ["pixel-7"]'))
    plan = with_devices(resolve_plan(load_profile(str(good))), ["raspberry-pi-5", "pixel-7"])
    assert plan.device.estimate == ("pixel-7", "raspberry-pi-5")
    assert Plan.from_dict(plan.to_dict()).device.estimate == ("pixel-7", "raspberry-pi-5")
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"pixel-7"', '"pixel-77"'))
    with pytest.raises(UnknownNameError, match="unknown device 'pixel-77'"):
        load_profile(str(bad))
