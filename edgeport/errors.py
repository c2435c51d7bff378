"""The errors edgeport raises. The CLI maps them to exit codes; the library never exits."""
from __future__ import annotations

import re
from typing import Any


class EdgeportError(Exception):
    """Base of every error edgeport raises on purpose. Its message is one readable line."""

    #: exit code the CLI uses for this error (2 = bad input, 1 = a check failed)
    exit_code = 2


class ConfigError(EdgeportError):
    """A profile, plan or option is malformed or asks for something impossible."""


class UnknownNameError(ConfigError):
    """A name (target, precision, sample model, runtime...) is not among the known ones."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class ModelLoadError(EdgeportError):
    """The model (or its data) could not be read or does not match its inputs."""


class MissingDependencyError(EdgeportError):
    """An optional library or tool is not installed."""

    def __init__(self, what: str, extra: str | None = None, hint: str | None = None):
        msg = f"{what} is not installed"
        if extra:
            msg += f" (pip install 'edgeport[{extra}]')"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class ConversionError(EdgeportError):
    """A target's artifact could not be made, or what was made does not load in its runtime.

    One line a user can act on: the stage (``torch→ONNX``, ``SavedModel→TFLite (int8)``...), the
    backend's reason, the op when it is known, a hint from the table of known failures
    (:mod:`edgeport.exporters.hints`) and where the full log is. ``detail`` keeps the backend's
    whole message (the pipeline writes it into the log)."""

    def __init__(self, fmt: str, stage: str, message: str, op: str | None = None,
                 hint: str | None = None, log: str | None = None):
        self.format, self.stage = fmt, stage
        self.detail = (message or "").strip()
        self.op, self.hint, self.log = op, hint, log
        super().__init__(self._line())

    @property
    def reason(self) -> str:
        """The backend's message as one line: its first meaningful line."""
        return one_line(Exception(self.detail)) if self.detail else "no message"

    def _line(self) -> str:
        text = f"{self.stage} failed: {self.reason}"
        if self.op and self.op not in text:
            text += f" (op {self.op})"
        if self.hint:
            text += f" — hint: {self.hint}"
        if self.log:
            text += f" — full log: {self.log}"
        return text

    def annotated(self, op: str | None = None, hint: str | None = None, log: str | None = None) -> "ConversionError":
        """A copy with the op, hint or log path filled in (the ones already set are kept)."""
        err = ConversionError(self.format, self.stage, self.detail, self.op or op, self.hint or hint,
                              self.log or log)
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self) -> tuple[Any, ...]:  # crosses the converter's process boundary whole
        return (ConversionError, (self.format, self.stage, self.detail, self.op, self.hint, self.log))


class RuntimeLoadError(EdgeportError):
    """An artifact could not be loaded or run in its runtime (bad file, unsupported op...)."""


def one_line(exc: BaseException, limit: int = 300, last: bool = False) -> str:
    """An exception as one readable line: the first (or ``last``) non-empty line of its message,
    else its type name, cut at ``limit`` characters. Every error message built from a library's
    exception goes through here."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # terminal colours (torch.onnx, onnx2tf)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= set("=-*_ ")]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:limit]
