"""The errors edgeport raises. The CLI maps them to exit codes; the library never exits."""
from __future__ import annotations


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
    """A converter failed. Carries the stage, the format and the backend's own message."""

    def __init__(self, fmt: str, stage: str, message: str):
        self.format, self.stage = fmt, stage
        first = (message or "").strip().splitlines()
        super().__init__(f"{fmt} conversion failed at {stage}: {first[-1] if first else 'no message'}")


class RuntimeLoadError(EdgeportError):
    """An artifact could not be loaded or run in its runtime (bad file, unsupported op...)."""


def one_line(exc: BaseException, limit: int = 300, last: bool = False) -> str:
    """An exception as one readable line: the first (or ``last``) non-empty line of its message,
    else its type name, cut at ``limit`` characters. Every error message built from a library's
    exception goes through here."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not set(ln.strip()) <= set("=-*_ ")]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:limit]
