"""Progress: bars on a terminal, lines elsewhere, nothing under -q; the log always gets the lines."""
from __future__ import annotations

import io

from edgeport.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _work(progress: Progress) -> None:
    with progress.bar(3, "auto search", unit="candidate") as bar:
        for i in range(3):
            progress.note(f"inner step {i}")
            bar.advance(f"candidate {i + 1}/3 judged", f"best so far: c{i}")


def test_a_terminal_gets_a_bar_with_count_and_status():
    term = _Terminal()
    log = io.StringIO()
    p = Progress(stream=term)
    p.log = log
    _work(p)
    shown = term.getvalue()
    assert "[edgeport] auto search: 3/3" in shown and "best so far: c2" in shown
    assert "inner step 2" in shown  # lines still show, above the bar
    assert "candidate 1/3 judged" not in shown  # the bar stands for them on a terminal ...
    assert log.getvalue().count("judged") == 3  # ... and the log keeps every one
    assert not p._bars


def test_a_pipe_gets_lines_and_quiet_gets_nothing():
    pipe = io.StringIO()
    _work(Progress(stream=pipe))
    lines = pipe.getvalue().splitlines()
    assert [ln for ln in lines if "judged" in ln] == [f"[edgeport] candidate {i}/3 judged" for i in (1, 2, 3)]
    assert "\r" not in pipe.getvalue()
    quiet = _Terminal()
    _work(Progress(enabled=False, stream=quiet))
    assert quiet.getvalue() == ""
