"""Progress on stderr for work that takes more than a moment: step lines, and bars (tqdm) for
work of known size (auto searches, sweeps, recovery epochs) when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TextIO

#: what a step listener hears: ("open" | "done" | "fail", the step's message)
StepListener = Callable[[str, str], None]


class Progress:
    """Prints ``[edgeport] step ... done (1.2 s)``; silent when ``enabled`` is False.

    While a target runs, ``log`` is its log file: every line is copied there, shown or not, so the
    log reads as the converters' output between edgeport's steps. ``listener`` hears each step
    open, end and fail (the converter's child process reports them to its parent, which then
    knows the stage a crash happened in)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.log: TextIO | None = None
        self.listener: StepListener | None = None
        self._bars: list[Any] = []  # live tqdm bars, innermost last

    def _line(self, text: str, shown: bool = True) -> None:
        if self.enabled and shown:
            if self._bars:  # printed above the bars, which are redrawn below it
                from tqdm import tqdm

                tqdm.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)
        if self.log is not None:
            print(text, file=self.log, flush=True)

    @property
    def on_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(self.enabled and isatty is not None and isatty())

    @contextmanager
    def bar(self, total: int, what: str, unit: str = "it") -> Iterator["Bar"]:
        """Work of ``total`` parts: a progress bar on a terminal; elsewhere (a pipe, a CI log)
        each part's line, which the target's log file always gets."""
        live = None
        if self.on_terminal:
            from tqdm import tqdm

            live = tqdm(total=total, desc=f"[edgeport] {what}", unit=unit, file=self.stream,
                        position=len(self._bars), leave=not self._bars, dynamic_ncols=True,
                        bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}")
            self._bars.append(live)
        try:
            yield Bar(self, live)
        finally:
            if live is not None:
                self._bars.remove(live)
                live.close()

    def note(self, message: str) -> None:
        self._line(f"[edgeport] {message}")

    def header(self, message: str) -> None:
        """A line that opens a section of work (one target of a multi-target export)."""
        self._line(f"[edgeport] == {message}")

    def _tell(self, event: str, message: str) -> None:
        if self.listener is not None:
            self.listener(event, message)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self._line(f"[edgeport] {message} ...")
        self._tell("open", message)
        try:
            yield
        except BaseException:
            self._line(f"[edgeport]   {message}: failed after {time.perf_counter() - t0:.1f} s")
            self._tell("fail", message)
            raise
        self._line(f"[edgeport]   {message}: {time.perf_counter() - t0:.1f} s")
        self._tell("done", message)


class Bar:
    """One bar of :meth:`Progress.bar`."""

    def __init__(self, progress: Progress, live: Any):
        self._progress, self._live = progress, live

    def advance(self, message: str, status: str | None = None) -> None:
        """One part done: ``message`` is its line (kept in the log; shown when there is no bar),
        ``status`` what the bar shows beside its count (e.g. the best so far)."""
        self._progress._line(f"[edgeport] {message}", shown=self._live is None)
        if self._live is not None:
            if status:
                self._live.set_postfix_str(status, refresh=False)
            self._live.update(1)


SILENT = Progress(enabled=False)
