"""Kernels: the fused units a CPU runtime executes, with their arithmetic and the bytes they move.

Every estimate starts from a list of :class:`Kernel` — read from an exported graph
(:mod:`.graph`) or built from a published architecture (:mod:`.reference_models`) — so the
published models and the user's artifact are counted by one rule:

- ``flops`` = 2 × multiply-accumulates for conv / depthwise / pointwise / fully-connected / matmul,
  one per output element for element-wise work, one per input element read by a pooling window;
- activations feeding a conv (BatchNorm, ReLU/ReLU6/clip, bias) are fused into it, as TFLite's
  converter and XNNPACK fuse them, so they are not kernels of their own;
- ``kind`` is the kernel class the roofline has one efficiency for (:data:`KINDS`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: kernel classes, each with one efficiency in the roofline
KINDS = ("conv", "depthwise", "pointwise", "fully_connected", "matmul", "elementwise", "pool", "other")
#: classes whose work is arithmetic (FLOPs); the others are timed by the bytes they move
COMPUTE_KINDS = ("conv", "depthwise", "pointwise", "fully_connected", "matmul")
KIND_TEXT = {
    "conv": "k×k convolution (k > 1)", "depthwise": "depthwise convolution",
    "pointwise": "1×1 convolution / linear layer over many rows (a GEMM)",
    "fully_connected": "fully connected on one row (a GEMV)", "matmul": "activation × activation matmul",
    "elementwise": "element-wise op, pad, concat, (de)quantize", "pool": "pooling / mean",
    "other": "softmax, normalization, resize, gather...",
}


@dataclass(frozen=True)
class Kernel:
    """One fused kernel: its class, FLOPs and the tensor elements it reads and writes."""

    kind: str
    flops: float
    in_elems: float = 0.0
    weight_elems: float = 0.0
    out_elems: float = 0.0

    def bytes(self, act_bytes: float, weight_bytes: float) -> float:
        return (self.in_elems + self.out_elems) * act_bytes + self.weight_elems * weight_bytes

    def work(self, act_bytes: float, weight_bytes: float) -> float:
        """What the kernel's class efficiency divides: FLOPs, or bytes for memory-bound classes."""
        return self.flops if self.kind in COMPUTE_KINDS else self.bytes(act_bytes, weight_bytes)


def conv_kernel(c_in: int, c_out: int, out_hw: tuple[int, int], kernel_hw: tuple[int, int], groups: int = 1,
                in_hw: tuple[int, int] | None = None) -> Kernel:
    """A 2-D convolution classified by its shape: depthwise, 1×1 (pointwise, or fully connected
    on a 1×1 map), k×k."""
    (out_h, out_w), (kh, kw) = out_hw, kernel_hw
    in_h, in_w = out_hw if in_hw is None else in_hw
    macs = out_h * out_w * c_out * (c_in // max(groups, 1)) * kh * kw
    if groups > 1 and groups == c_in:
        kind = "depthwise"
    elif kh == 1 and kw == 1:
        kind = "fully_connected" if out_h * out_w == 1 else "pointwise"
    else:
        kind = "conv"
    return Kernel(kind, 2.0 * macs, c_in * in_h * in_w, c_out * (c_in // max(groups, 1)) * kh * kw,
                  c_out * out_h * out_w)


def linear_kernel(rows: int, k: int, n: int) -> Kernel:
    """``rows`` × ``k`` input times a ``k`` × ``n`` weight: a GEMM, or a GEMV for one row."""
    return Kernel("fully_connected" if rows == 1 else "pointwise", 2.0 * rows * k * n, rows * k, k * n, rows * n)


def summary(kernels: Iterable[Kernel]) -> dict[str, float]:
    """FLOPs per class and in total, and the kernel count (what identifies a model)."""
    flops: Counter[str] = Counter()
    n = 0
    for k in kernels:
        flops[k.kind] += k.flops
        n += 1
    out = {kind: float(flops.get(kind, 0.0)) for kind in COMPUTE_KINDS}
    out["total"] = float(sum(flops.values()))
    out["kernels"] = float(n)
    return out


def same_network(a: Mapping[str, float], b: Mapping[str, float], tol: float = 0.03) -> bool:
    """Whether two kernel summaries describe the same network: total FLOPs within ``tol`` and
    every compute class's share within ``tol`` of the total."""
    ta, tb = a["total"], b["total"]
    if ta <= 0 or tb <= 0 or abs(ta - tb) > tol * max(ta, tb):
        return False
    return all(abs(a.get(k, 0.0) / ta - b.get(k, 0.0) / tb) <= tol for k in COMPUTE_KINDS)


def total_flops(kernels: Sequence[Kernel]) -> float:
    return float(sum(k.flops for k in kernels))
