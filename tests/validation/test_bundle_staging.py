"""Writing a bundle: concurrent finishers into one folder take turns and never fail, the final name
always holds a whole bundle, and a killed or terminated export leaves nothing under it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from edgeport.validation import bundle as B
from edgeport.validation import staging as S

ROOT = Path(__file__).resolve().parents[2]


def _fill(stage: Path, who: str, size: int = 20_000) -> None:
    (stage / "a.bin").write_bytes(who.encode() * (size // len(who)))
    (stage / "sub").mkdir()
    (stage / "sub" / "b.bin").write_bytes(os.urandom(size))
    B.write_manifest(stage, {"writer": who})


def _writer(final: Path, who: str) -> None:
    with S.staging(final) as stage:
        _fill(stage, who)


def _assert_whole(final: Path) -> str:
    result = B.check_integrity(final)
    assert result.ok, result.problems
    who = result.manifest["writer"]
    assert (final / "a.bin").read_bytes().startswith(who.encode())
    return who


def _leftovers(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


def test_a_bundle_appears_whole_and_leaves_nothing_else(tmp_path):
    final = tmp_path / "out" / "m-local-onnx"
    _writer(final, "first")
    assert _assert_whole(final) == "first" and os.listdir(final.parent) == ["m-local-onnx"]
    _writer(final, "second")
    assert _assert_whole(final) == "second" and os.listdir(final.parent) == ["m-local-onnx"]


def test_an_error_inside_removes_the_stage_and_keeps_the_old_bundle(tmp_path):
    final = tmp_path / "m"
    _writer(final, "old")
    with pytest.raises(RuntimeError):
        with S.staging(final) as stage:
            (stage / "half.bin").write_bytes(b"x")
            raise RuntimeError("converter crashed")
    assert _assert_whole(final) == "old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_concurrent_finishers_in_threads_never_fail_and_the_name_is_never_empty(tmp_path, monkeypatch, exchange):
    if not exchange:  # a file system without RENAME_EXCHANGE: still serialised, never failing
        monkeypatch.setattr(S, "_exchange", lambda a, b: False)
    final = tmp_path / "m"
    _writer(final, "seed")
    errors: list[BaseException] = []
    gaps: list[float] = []
    done = threading.Event()

    def work(w: int) -> None:
        try:
            for r in range(50):
                _writer(final, f"w{w}r{r}")
        except BaseException as exc:  # noqa: BLE001 - every failure is the finding
            errors.append(exc)

    def watch() -> None:  # the re-export window: the final name must never be missing
        while not done.is_set():
            if not final.is_dir():
                gaps.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    watcher.join()
    assert errors == []
    assert gaps == [] or not exchange  # renaming aside leaves a moment with no bundle
    assert _assert_whole(final).endswith("r49") and _leftovers(tmp_path) == []


_PROCESS_WRITER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from edgeport.validation import bundle as B
    from edgeport.validation import staging as S
    final, who, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for r in range(rounds):
        with S.staging(final) as stage:
            (stage / "a.bin").write_bytes(f"{who}r{r}".encode() * 2000)
            (stage / "sub").mkdir()
            (stage / "sub" / "b.bin").write_bytes(os.urandom(20000))
            B.write_manifest(stage, {"writer": f"{who}r{r}"})
""")


def test_concurrent_finishers_in_processes_never_fail(tmp_path):
    final = tmp_path / "m"
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_WRITER, str(final), f"p{p}", "25"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for p in range(4)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert all(rc == 0 for rc, _ in results), [err[-600:] for _, err in results]
    assert _assert_whole(final).endswith("r24") and _leftovers(tmp_path) == []


_INSIDE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeport.validation import staging as S
    final = Path(sys.argv[1])
    try:
        with S.sigterm_as_interrupt(), S.staging(final) as stage:
            (stage / "a.bin").write_bytes(b"half" * 1000)
            print("inside", flush=True)
            time.sleep(120)
    except S.Terminated as exc:
        print("terminated", exc.signum, flush=True)
        sys.exit(128 + exc.signum)
""")


def _start_inside(final: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _INSIDE, str(final)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "inside"
    return proc


@pytest.mark.parametrize("existing", [False, True])
def test_sigkill_inside_staging_leaves_nothing_under_the_final_name(tmp_path, existing):
    final = tmp_path / "m"
    if existing:
        _writer(final, "old")
    victim = _start_inside(final)
    victim.kill()
    victim.wait()
    victim.stdout.close()
    if existing:
        assert _assert_whole(final) == "old"
    else:
        assert not os.path.lexists(final)
    (left,) = _leftovers(tmp_path)
    assert left.startswith(f".m.partial-{victim.pid}-")

    assert S.sweep_stale(tmp_path) == [tmp_path / left] and _leftovers(tmp_path) == []
    if existing:
        assert _assert_whole(final) == "old"
    alive = _start_inside(final)  # a live export's stage is not swept
    try:
        assert S.sweep_stale(tmp_path) == []
        (still,) = _leftovers(tmp_path)
        assert still.startswith(f".m.partial-{alive.pid}-")
    finally:
        alive.kill()
        alive.wait()
        alive.stdout.close()
    assert S.sweep_stale(tmp_path, "m") == [tmp_path / still] and _leftovers(tmp_path) == []


def test_staging_sweeps_its_own_dead_leftovers_first(tmp_path):
    final = tmp_path / "m"
    victim = _start_inside(final)
    victim.kill()
    victim.wait()
    victim.stdout.close()
    assert len(_leftovers(tmp_path)) == 1
    _writer(final, "next")
    assert _assert_whole(final) == "next" and _leftovers(tmp_path) == []


def test_sigterm_inside_staging_cleans_up_like_an_exception(tmp_path):
    final = tmp_path / "m"
    _writer(final, "old")
    proc = _start_inside(final)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and out.strip() == f"terminated {int(signal.SIGTERM)}"
    assert _assert_whole(final) == "old" and _leftovers(tmp_path) == []


def test_sigterm_during_the_swap_is_raised_after_it(tmp_path, monkeypatch):
    final = tmp_path / "m"
    _writer(final, "old")
    real_install = S._install

    def install_interrupted(stage: Path, target: Path):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the swap holds the lock
        time.sleep(0.05)
        return real_install(stage, target)

    monkeypatch.setattr(S, "_install", install_interrupted)
    with pytest.raises(S.Terminated):
        with S.sigterm_as_interrupt():
            _writer(final, "new")
    assert _assert_whole(final) == "new" and _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_sweep_puts_back_an_old_bundle_a_crash_left_aside(tmp_path):
    # where no atomic exchange exists, the old bundle is renamed aside before the new one goes in;
    # a crash between the two leaves no final folder: the sweep restores the old one
    final = tmp_path / "m"
    _writer(final, "old")
    aside = tmp_path / f".m.old-{_dead_pid()}-{S._HOST}-1-x"
    os.rename(final, aside)
    assert S.sweep_stale(tmp_path) == [] and _assert_whole(final) == "old" and _leftovers(tmp_path) == []


def test_sweep_leaves_other_hosts_and_unrelated_entries_alone(tmp_path):
    pid = _dead_pid()
    keep = [f".m.partial-{pid}-h00000000-1-x", ".m.partial-notapid", ".hidden", "m.partial-1"]
    for name in keep:
        (tmp_path / name).mkdir()
    legacy = tmp_path / f".m.old-{pid}"  # what earlier versions left behind
    legacy.mkdir()
    assert S.sweep_stale(tmp_path) == [legacy]
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert S.sweep_stale(tmp_path / "missing") == []
