"""Progress lines on stderr for steps that take more than a moment."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class Progress:
    """Prints ``[edgeport] step ... done (1.2 s)``; silent when ``enabled`` is False."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr

    def note(self, message: str) -> None:
        if self.enabled:
            print(f"[edgeport] {message}", file=self.stream, flush=True)

    def header(self, message: str) -> None:
        """A line that opens a section of work (one target of a multi-target export)."""
        if self.enabled:
            print(f"[edgeport] == {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.enabled:
            print(f"[edgeport] {message} ...", file=self.stream, flush=True)
        try:
            yield
        except BaseException:
            if self.enabled:
                print(f"[edgeport]   {message}: failed after {time.perf_counter() - t0:.1f} s",
                      file=self.stream, flush=True)
            raise
        if self.enabled:
            print(f"[edgeport]   {message}: {time.perf_counter() - t0:.1f} s", file=self.stream, flush=True)


SILENT = Progress(enabled=False)
