"""A format registered from the test suite runs export -> validate -> tamper -> exit codes end to
end, through the CLI's own entry point, without one library file knowing it exists."""
from __future__ import annotations

import json
import time

import pytest

import null_format
from edgeport.cli import main


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    null_format.register()
    path = tmp_path_factory.mktemp("null") / "null-target.toml"
    path.write_text(null_format.PROFILE)
    return path


def test_null_format_end_to_end(profile, tmp_path, capsys):
    import torch  # noqa: F401  (imported before timing: the model is a torch module)

    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = main(["export", "tests/null_format.py:factory", "--target", str(profile), "-o", str(out), "--json", "-q"])
    doc = json.loads(capsys.readouterr().out)
    bundle = out / "tiny-null-target"
    assert rc == 0, doc["checks"]
    assert doc["format"] == "null" and doc["runtime"] == "null-numpy" and doc["passed"] is True
    assert doc["parity"]["outputs"][0]["max_abs"] < 1e-6 and doc["parity"]["samples"] == 32
    assert doc["size"]["artifact_bytes"] == (bundle / "model.null").stat().st_size and doc["size"]["ratio"] == 1.0
    assert sorted(p.name for p in bundle.iterdir()) == ["golden.npz", "manifest.json", "model.null", "report.html",
                                                        "report.json"]

    assert main(["validate", str(bundle), "-q"]) == 0
    capsys.readouterr()
    data = bytearray((bundle / "model.null").read_bytes())
    data[-30] ^= 0x01
    (bundle / "model.null").write_bytes(bytes(data))
    assert main(["validate", str(bundle), "--json", "-q"]) == 1
    rep = json.loads(capsys.readouterr().out)
    integrity = next(c for c in rep["checks"] if c["name"] == "integrity")
    assert not integrity["passed"] and "model.null" in integrity["detail"]
    elapsed = time.perf_counter() - t0
    print(f"null format: export + validate + tamper + validate in {elapsed:.2f} s")


@pytest.mark.parametrize("edit, needle", [
    (('runtime = "null-numpy"', 'runtime = "nul-numpy"'), "runtime 'nul-numpy' is not a runtime of the null format"),
    (('precisions = ["fp32"]', 'precisions = ["fp32", "int8"]'), "the null exporter cannot make 'int8'"),
    (('runs = 5', 'runs = "5"'), "runs must be an integer"),
    (('runs = 5', 'runs = 5\n[options]\ntimeout_s = true'), "timeout_s must be a finite number"),
    (('runs = 5', 'runs = 5\n[device]\nnmae = "x"'), "unknown key 'nmae'"),
    (('runs = 5', 'runs = 5\n[tolerances.fp32]\naccuracy_drop_max = 0.5'), "accuracy_drop_max must be <= 0.25"),
])
def test_a_bad_profile_fails_at_load_even_beside_a_good_target(profile, tmp_path, capsys, edit, needle):
    bad = tmp_path / "bad.toml"
    bad.write_text(null_format.PROFILE.replace(*edit).replace("null-target", "bad-target"))
    out = tmp_path / "out"
    rc = main(["export", "tests/null_format.py:factory", "--target", str(profile), "--target", str(bad),
               "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err, err
    assert [ln for ln in err.splitlines() if ln.startswith("edgeport: error:")] == [err.strip()]
    assert not out.exists()


def test_a_crashing_converter_is_one_target_s_error(tmp_path):
    """The converter of one target aborts its process; the other target still ships, the run
    ends with exit 2, and the JUnit file lists both. (A fresh process, as a user runs it: a test
    process that has loaded TensorFlow runs converters in-process.)"""
    import os
    import subprocess
    import sys

    profile = tmp_path / "null-target.toml"
    profile.write_text(null_format.PROFILE)
    other = tmp_path / "other.toml"
    other.write_text(null_format.PROFILE.replace("null-target", "null-crash"))
    out, junit = tmp_path / "out", tmp_path / "checks.xml"
    code = ("import sys; sys.path.insert(0, 'tests'); import null_format; null_format.register(); "
            "from edgeport.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, EDGEPORT_TEST_CRASH_TARGET="null-crash")
    proc = subprocess.run([sys.executable, "-c", code, "export", "tests/null_format.py:factory",
                           "--target", str(other), "--target", str(profile), "-o", str(out), "--junit", str(junit)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    crash_log = out / "tiny-null-crash.log"
    # the stage (no step: "export"), the signal, the Python frame it hit (from faulthandler's stack
    # in the log), and the log
    assert (f"null-crash: export failed: the converter crashed (SIGABRT) in edgeport/isolated_call.py "
            f"(_child); the process was isolated, other targets are unaffected — full log: {crash_log}") in proc.stderr
    assert (out / "tiny-null-target" / "manifest.json").is_file() and not (out / "tiny-null-crash").exists()
    # each target's log beside the bundles, the failed one's too; no staging folder left behind
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "tiny-null-crash.log", "tiny-null-target",
                                                     "tiny-null-target.log"]
    assert "Fatal Python error: Aborted" in crash_log.read_text()
    assert "1/2 targets passed" in proc.stdout and "ERROR" in proc.stdout
    import xml.etree.ElementTree as ET

    suites = {s.get("name"): s for s in ET.parse(junit).getroot().iter("testsuite")}
    assert set(suites) == {"null-crash", "tiny-null-target"}
    assert suites["null-crash"].find("testcase/error") is not None


@pytest.mark.parametrize("args, needle", [
    (["--precision", ""], "--precision is empty"),
    (["--junit", "/proc/edgeport-cannot-write/checks.xml"], "cannot write /proc/edgeport-cannot-write/checks.xml"),
])
def test_input_mistakes_found_before_any_work(profile, tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    rc = main(["export", "tests/null_format.py:factory", "--target", str(profile), "-o", str(out), "-q", *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and not out.exists(), err


def test_two_profiles_with_one_name_are_refused(profile, tmp_path, capsys):
    twin = tmp_path / "twin.toml"
    twin.write_text(null_format.PROFILE)  # the same name: one bundle would overwrite the other
    rc = main(["export", "tests/null_format.py:factory", "--target", str(profile), "--target", str(twin),
               "-o", str(tmp_path / "out"), "-q"])
    assert rc == 2 and "both named 'null-target'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_refuses_bad_threads_and_leaves_no_partial_output(profile, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", "tests/null_format.py:factory", "--target", str(profile), "-o", str(out), "-q"]) == 0
    model = out / "tiny-null-target" / "model.null"
    golden = out / "tiny-null-target" / "golden.npz"
    assert main(["run", str(model), "--data", str(golden), "--threads", "-1"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    dest = tmp_path / "res" / "y.npz"
    assert main(["run", str(model), "--data", str(golden), "-o", str(dest)]) == 0
    assert sorted(p.name for p in dest.parent.iterdir()) == ["y.npz"]
