"""Whether this host's onnxruntime int8 kernels can saturate, which decides ``reduce_range``.

On x86-64 without VNNI, onnxruntime multiplies uint8 activations by int8 weights with an
instruction that adds pairs of products into 16 bits and saturates there; a full 8-bit weight range
overflows it on real CNNs (EfficientNet-Lite0 static int8: top-1 agreement 0.78 with full-range
weights, 0.86 with 7-bit weights on an AVX2 host). Hosts with AVX-VNNI or AVX512-VNNI accumulate
in 32 bits, as do the ARM kernels, so they keep the full range.
"""
from __future__ import annotations

import platform
from pathlib import Path

from ..bounded_read import read_at_most

_CPUINFO = Path("/proc/cpuinfo")
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def _x86_flags() -> set[str] | None:
    """The CPU flags Linux reports, or None when they cannot be read."""
    try:
        with _CPUINFO.open("rb") as f:
            data = read_at_most(f, 4 << 20)
    except OSError:
        return None
    if data is None:
        return None
    for line in data.decode("ascii", "replace").splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def saturation_reason() -> str | None:
    """Why the int8 kernels here saturate (so weights should use 7 bits), or None when they do not."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return None
    flags = _x86_flags()
    if flags is None:
        return "x86 host whose CPU flags could not be read (assumed without VNNI)"
    if any(f in flags for f in _VNNI_FLAGS):
        return None
    return "x86 host without VNNI: onnxruntime's uint8 x int8 kernels saturate at 16 bits"


def weights_in_7_bits(setting: str) -> tuple[bool, str | None]:
    """The profile's ``reduce_range`` resolved: whether static int8 stores 7-bit weights, and why
    (None when it keeps the full range)."""
    if setting == "on":
        return True, "asked for (options.reduce_range = \"on\")"
    if setting == "off":
        return False, None
    reason = saturation_reason()
    return reason is not None, reason
