"""Reading a converter's failure: the op it names, the hint from the table of known failures
(:mod:`.hints`), and torch.onnx.export's multi-page reports made into one line that names the
aten op."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ConversionError, EdgeportError, RuntimeLoadError, one_line
from .hints import KNOWN_FAILURES

if TYPE_CHECKING:  # pragma: no cover
    from ..targets.profile import Plan

#: where converters name the op they stopped at; the first match wins
_OP_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"OpOverload\(op='aten\.(\w+)'"), "aten::{}"),      # torch.onnx (dynamo) dispatch
    (re.compile(r"\baten::(\w+)"), "aten::{}"),
    (re.compile(r"convert function for op '(\w+)' not implemented"), "aten::{}"),  # coremltools
    (re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"), "{}"),  # TFLiteConverter
    (re.compile(r"TF Select ops: (\w+)"), "{}"),
    (re.compile(r"failed to legalize operation 'tf\.(\w+)'"), "{}"),
    (re.compile(r"Unsupported Ops in the model[^\n]*\n\s*(\w+(?:, \w+)*)"), "{}"),  # tensorflowjs
    (re.compile(r"Node number \d+ \((\w+)\) failed"), "{}"),           # LiteRT
)


def find_op(text: str) -> str | None:
    """The op a converter's message names, as it names it (``aten::exp``, ``Erf``...)."""
    for pattern, form in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            return form.format(m.group(1))
    return None


def find_hint(fmt: str, precision: str, stage: str, op: str | None, text: str) -> str | None:
    """The hint of the first known failure that matches (see :mod:`.hints` for the text searched)."""
    haystack = f"format={fmt} precision={precision} stage={stage} op={op or '-'}\n{text}"
    for known in KNOWN_FAILURES:
        if re.search(known.pattern, haystack, re.IGNORECASE | re.DOTALL):
            return known.hint
    return None


def explain(exc: BaseException, plan: "Plan", log: str) -> EdgeportError:
    """The error a target that could not be produced ends with: one line naming the stage, the
    op when known, a hint when the failure is a known one, and ``full log: <log>``.

    A runtime that cannot load or run the artifact just converted is the conversion's failure too
    (stage ``load and run in <runtime>``); any other edgeport error keeps its class and message
    (with the log named); an unexpected exception is named by its type."""
    if isinstance(exc, RuntimeLoadError):
        exc = ConversionError(plan.format, f"load and run in {plan.runtime}", str(exc))
    if isinstance(exc, ConversionError):
        op = exc.op or find_op(exc.detail)
        hint = exc.hint or find_hint(plan.format, plan.precision.value, exc.stage, op, exc.detail)
        return exc.annotated(op=op, hint=hint, log=log)
    if isinstance(exc, EdgeportError):
        return _with_log(exc, log)
    return EdgeportError(f"unexpected {type(exc).__name__}: {one_line(exc)} — full log: {log}")


def _with_log(exc: EdgeportError, log: str) -> EdgeportError:
    """The same error (class and attributes) with `` — full log: <log>`` after its message."""
    err = type(exc).__new__(type(exc))
    err.__dict__.update(exc.__dict__)
    Exception.__init__(err, f"{exc} — full log: {log}")
    return err


def torch_onnx_failure(exc: BaseException) -> str:
    """torch.onnx.export's failure as a message whose first line names what failed and the aten
    op (its own report's last line is "Refer to the full stack trace above"); the report follows
    for the log.

    The dynamo exporter chains its errors: a ``ConversionError`` naming the FX node (``%exp =
    call_function[target=torch.ops.aten.exp.default](args = (%view_as_complex,))``) caused by a
    ``DispatchError`` ("No ONNX function found for <OpOverload(op='aten.exp', ...)>. Failure
    message: No decompositions registered for the complex-valued input"); a capture failure
    (step 1, torch.export) ends in the library's own exception."""
    chain = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    report = "\n\n".join(f"{type(e).__name__}: {e}" for e in chain)
    m = re.search(r"No ONNX function found for <OpOverload\(op='aten\.(\w+)', overload='(\w+)'\)>"
                  r"(?:\. Failure message: ([^\n]*))?", report)
    if m:
        first = f"no ONNX export for aten::{m.group(1)}"
        if "complex" in (m.group(3) or ""):
            first += " on a complex-valued input"
        node = re.search(rf"target=torch\.ops\.aten\.{m.group(1)}\.\w+\]\(args = \(%(\w+)", report)
        if node:
            first += f" (its input comes from {node.group(1)})"
    else:
        inner = chain[-1]
        first = f"{type(inner).__name__}: {one_line(inner)}"
    return f"{first}\n\n{report}"
