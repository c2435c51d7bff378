"""Progress lines on stderr for steps that take more than a moment."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

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

    def _line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)
        if self.log is not None:
            print(text, file=self.log, flush=True)

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


SILENT = Progress(enabled=False)
