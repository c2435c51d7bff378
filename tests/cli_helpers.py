"""Run the CLI as a user would: a fresh process, its exit code, stdout and stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python -m edgeport ARGS`` in a fresh process and return the finished process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("EDGEPORT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgeport", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def cli_json(*args: str) -> tuple[int, object]:
    proc = run_cli(*args, "--json")
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON from edgeport {' '.join(args)} (rc {proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}") from None


def assert_one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeport: error:")]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
