"""Ops of a CoreML ML Program (.mlpackage), read from the saved spec.

``unsupported`` lists the ops edgeport's emulator cannot execute: the artifact could not be
validated on Linux, so they are blocking. Which compute unit (CPU / GPU / Neural Engine) runs
each op is decided by CoreML on the device at load time and is not knowable from the file.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from . import OpsReport

if TYPE_CHECKING:  # pragma: no cover
    from ...targets.profile import Plan


def inspect(path: Path, plan: "Plan | None" = None) -> OpsReport:
    """Op types used by the program (``const`` left out), the emulator's gaps, compression ops."""
    from ..runtimes.coreml_emulator.interpreter import missing_ops
    from ..runtimes.coreml_emulator.program import load_program

    program = load_program(Path(path))
    counts = Counter(op.type for op in program.operations if op.type != "const")
    missing = missing_ops(program)
    details = {
        "opset": program.opset,
        "spec_version": program.spec_version,
        "op_counts": dict(sorted(counts.items())),
        "weight_decompression_ops": {k: v for k, v in sorted(counts.items()) if k.startswith("constexpr_")},
        "unsupported_means": "ops the coreml-emulator cannot execute (artifact not verifiable on Linux)",
        "compute_units": "chosen by CoreML on the device (CPU / GPU / Neural Engine); not in the file",
    }
    return OpsReport(used=sorted(counts), unsupported=missing, blocking=bool(missing), details=details)
