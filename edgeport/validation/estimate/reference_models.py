"""The networks of the published latency table, as kernel lists built from their definitions.

No weights and no framework: each builder walks the published architecture with shape
arithmetic only and emits the same :class:`~.kernels.Kernel` records the graph readers emit
for an exported artifact (convolutions with BatchNorm and activation fused, residual adds,
pools, concats, the classifier). Definitions follow the papers and the reference code named in
``latencies.toml``: MobileNetV1/V2 (TF-slim), EfficientNet-Lite0–4 (tensorflow/tpu
``efficientnet_lite_builder.py``: blocks of EfficientNet-B0, no squeeze-excite, stem and head
not scaled, first and last stage repeats not scaled), Inception-V4 and Inception-ResNet-V2
(TF-slim, 299×299), ResNet-50 (v1.5: the stride on the 3×3 conv), DistilBERT-base
(6 layers, width 768, sequence 128). The test suite recomputes the MACs the sources publish.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from .kernels import Kernel, conv_kernel, linear_kernel

Shape = tuple[int, int, int]  # channels, height, width


class _Net:
    """Shape bookkeeping while a network is laid out; ``kernels`` collects what it runs."""

    def __init__(self) -> None:
        self.kernels: list[Kernel] = []

    def conv(self, x: Shape, out: int, kh: int, kw: int | None = None, stride: int = 1, same: bool = True,
             groups: int = 1) -> Shape:
        kw = kh if kw is None else kw
        c, h, w = x
        if same:
            oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        else:
            oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
        self.kernels.append(conv_kernel(c, out, (oh, ow), (kh, kw), groups, (h, w)))
        return out, oh, ow

    def dw(self, x: Shape, k: int, stride: int = 1) -> Shape:
        return self.conv(x, x[0], k, k, stride, True, groups=x[0])

    def pool(self, x: Shape, k: int, stride: int, same: bool = True) -> Shape:
        c, h, w = x
        oh, ow = (math.ceil(h / stride), math.ceil(w / stride)) if same else \
            ((h - k) // stride + 1, (w - k) // stride + 1)
        self.kernels.append(Kernel("pool", float(c * oh * ow * k * k), c * h * w, 0, c * oh * ow))
        return c, oh, ow

    def global_pool(self, x: Shape) -> Shape:
        c, h, w = x
        self.kernels.append(Kernel("pool", float(c * h * w), c * h * w, 0, c))
        return c, 1, 1

    def add(self, x: Shape) -> Shape:
        n = x[0] * x[1] * x[2]
        self.kernels.append(Kernel("elementwise", float(n), 2 * n, 0, n))
        return x

    def concat(self, parts: list[Shape]) -> Shape:
        c = sum(p[0] for p in parts)
        _, h, w = parts[0]
        n = c * h * w
        self.kernels.append(Kernel("elementwise", 0.0, n, 0, n))
        return c, h, w

    def classifier(self, x: Shape, classes: int, softmax: bool = True) -> None:
        self.kernels.append(linear_kernel(1, x[0] * x[1] * x[2], classes))
        if softmax:
            self.kernels.append(Kernel("other", float(classes), classes, 0, classes))


def mobilenet_v1(width: float = 1.0, size: int = 224) -> list[Kernel]:
    n = _Net()
    x = n.conv((3, size, size), int(32 * width), 3, stride=2)
    for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        x = n.dw(x, 3, s)
        x = n.conv(x, int(c * width), 1)
    x = n.global_pool(x)
    n.classifier(x, 1001)
    return n.kernels


def mobilenet_v2(size: int = 224, classes: int = 1000) -> list[Kernel]:
    n = _Net()
    x = n.conv((3, size, size), 32, 3, stride=2)
    for t, c, reps, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                          (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(reps):
            stride = s if i == 0 else 1
            y = n.conv(x, x[0] * t, 1) if t != 1 else x
            y = n.dw(y, 3, stride)
            y = n.conv(y, c, 1)
            if stride == 1 and x[0] == c:
                y = n.add(y)
            x = y
    x = n.conv(x, 1280, 1)
    x = n.global_pool(x)
    n.classifier(x, classes)
    return n.kernels


# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, in, out)
_EFFNET_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                  (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
#: (width, depth, resolution) of each EfficientNet-Lite (efficientnet_lite_builder.py)
LITE_PARAMS = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


def _round_filters(f: int, width: float, divisor: int = 8) -> int:
    scaled = f * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * scaled else new


def efficientnet_lite(index: int) -> list[Kernel]:
    width, depth, size = LITE_PARAMS[index]
    n = _Net()
    x = n.conv((3, size, size), 32, 3, stride=2)           # stem not scaled
    last = len(_EFFNET_STAGES) - 1
    for i, (reps, k, s, e, _c_in, c_out) in enumerate(_EFFNET_STAGES):
        reps = reps if i in (0, last) else math.ceil(depth * reps)
        out = _round_filters(c_out, width)
        for r in range(reps):
            stride = s if r == 0 else 1
            y = n.conv(x, x[0] * e, 1) if e != 1 else x
            y = n.dw(y, k, stride)
            y = n.conv(y, out, 1)
            if stride == 1 and x[0] == out:
                y = n.add(y)
            x = y
    x = n.conv(x, 1280, 1)                                 # head not scaled
    x = n.global_pool(x)
    n.classifier(x, 1000)
    return n.kernels


def resnet50(size: int = 224, classes: int = 1000) -> list[Kernel]:
    n = _Net()
    x = n.conv((3, size, size), 64, 7, stride=2)
    x = n.pool(x, 3, 2)
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for b in range(blocks):
            s = stride if b == 0 else 1
            y = n.conv(x, width, 1)
            y = n.conv(y, width, 3, stride=s)
            y = n.conv(y, width * 4, 1)
            if b == 0:
                n.conv(x, width * 4, 1, stride=s)          # projection shortcut
            x = n.add(y)
    x = n.global_pool(x)
    n.classifier(x, classes)
    return n.kernels


def _chain(n: _Net, x: Shape, convs: list[tuple[int, int, int, int, bool]]) -> Shape:
    """Convs in sequence: (out, kh, kw, stride, same padding)."""
    for out, kh, kw, s, same in convs:
        x = n.conv(x, out, kh, kw, s, same)
    return x


def inception_v4(size: int = 299) -> list[Kernel]:
    n = _Net()
    x = _chain(n, (3, size, size), [(32, 3, 3, 2, False), (32, 3, 3, 1, False), (64, 3, 3, 1, True)])
    x = n.concat([n.pool(x, 3, 2, same=False), n.conv(x, 96, 3, 3, 2, False)])
    x = n.concat([_chain(n, x, [(64, 1, 1, 1, True), (96, 3, 3, 1, False)]),
                  _chain(n, x, [(64, 1, 1, 1, True), (64, 1, 7, 1, True), (64, 7, 1, 1, True), (96, 3, 3, 1, False)])])
    x = n.concat([n.conv(x, 192, 3, 3, 2, False), n.pool(x, 3, 2, same=False)])
    for _ in range(4):   # Inception-A
        x = n.concat([n.conv(x, 96, 1), _chain(n, x, [(64, 1, 1, 1, True), (96, 3, 3, 1, True)]),
                      _chain(n, x, [(64, 1, 1, 1, True), (96, 3, 3, 1, True), (96, 3, 3, 1, True)]),
                      n.conv(n.pool(x, 3, 1), 96, 1)])
    x = n.concat([n.conv(x, 384, 3, 3, 2, False),     # Reduction-A
                  _chain(n, x, [(192, 1, 1, 1, True), (224, 3, 3, 1, True), (256, 3, 3, 2, False)]),
                  n.pool(x, 3, 2, same=False)])
    for _ in range(7):   # Inception-B
        x = n.concat([n.conv(x, 384, 1),
                      _chain(n, x, [(192, 1, 1, 1, True), (224, 1, 7, 1, True), (256, 7, 1, 1, True)]),
                      _chain(n, x, [(192, 1, 1, 1, True), (192, 7, 1, 1, True), (224, 1, 7, 1, True),
                                    (224, 7, 1, 1, True), (256, 1, 7, 1, True)]),
                      n.conv(n.pool(x, 3, 1), 128, 1)])
    x = n.concat([_chain(n, x, [(192, 1, 1, 1, True), (192, 3, 3, 2, False)]),   # Reduction-B
                  _chain(n, x, [(256, 1, 1, 1, True), (256, 1, 7, 1, True), (320, 7, 1, 1, True),
                                (320, 3, 3, 2, False)]),
                  n.pool(x, 3, 2, same=False)])
    for _ in range(3):   # Inception-C
        b1 = n.conv(x, 384, 1)
        b2 = _chain(n, x, [(384, 1, 1, 1, True), (448, 3, 1, 1, True), (512, 1, 3, 1, True)])
        x = n.concat([n.conv(x, 256, 1), n.conv(b1, 256, 1, 3), n.conv(b1, 256, 3, 1),
                      n.conv(b2, 256, 1, 3), n.conv(b2, 256, 3, 1), n.conv(n.pool(x, 3, 1), 256, 1)])
    x = n.global_pool(x)
    n.classifier(x, 1001)
    return n.kernels


def inception_resnet_v2(size: int = 299) -> list[Kernel]:
    n = _Net()
    x = _chain(n, (3, size, size), [(32, 3, 3, 2, False), (32, 3, 3, 1, False), (64, 3, 3, 1, True)])
    x = n.pool(x, 3, 2, same=False)
    x = _chain(n, x, [(80, 1, 1, 1, False), (192, 3, 3, 1, False)])
    x = n.pool(x, 3, 2, same=False)
    x = n.concat([n.conv(x, 96, 1), _chain(n, x, [(48, 1, 1, 1, True), (64, 5, 5, 1, True)]),
                  _chain(n, x, [(64, 1, 1, 1, True), (96, 3, 3, 1, True), (96, 3, 3, 1, True)]),
                  n.conv(n.pool(x, 3, 1), 64, 1)])

    def residual(x: Shape, branches: list[Shape]) -> Shape:
        up = n.conv(n.concat(branches), x[0], 1)
        return n.add(up)

    for _ in range(10):  # block35
        x = residual(x, [n.conv(x, 32, 1), _chain(n, x, [(32, 1, 1, 1, True), (32, 3, 3, 1, True)]),
                         _chain(n, x, [(32, 1, 1, 1, True), (48, 3, 3, 1, True), (64, 3, 3, 1, True)])])
    x = n.concat([n.conv(x, 384, 3, 3, 2, False),
                  _chain(n, x, [(256, 1, 1, 1, True), (256, 3, 3, 1, True), (384, 3, 3, 2, False)]),
                  n.pool(x, 3, 2, same=False)])
    for _ in range(20):  # block17
        x = residual(x, [n.conv(x, 192, 1),
                         _chain(n, x, [(128, 1, 1, 1, True), (160, 1, 7, 1, True), (192, 7, 1, 1, True)])])
    x = n.concat([_chain(n, x, [(256, 1, 1, 1, True), (384, 3, 3, 2, False)]),
                  _chain(n, x, [(256, 1, 1, 1, True), (288, 3, 3, 2, False)]),
                  _chain(n, x, [(256, 1, 1, 1, True), (288, 3, 3, 1, True), (320, 3, 3, 2, False)]),
                  n.pool(x, 3, 2, same=False)])
    for _ in range(10):  # block8 (the last one without activation: same kernels)
        x = residual(x, [n.conv(x, 192, 1),
                         _chain(n, x, [(192, 1, 1, 1, True), (224, 1, 3, 1, True), (256, 3, 1, 1, True)])])
    x = n.conv(x, 1536, 1)
    x = n.global_pool(x)
    n.classifier(x, 1001)
    return n.kernels


def distilbert(seq: int = 128, width: int = 768, layers: int = 6, heads: int = 12, ffn: int = 3072) -> list[Kernel]:
    ks: list[Kernel] = [Kernel("other", 0.0, seq, seq * width, seq * width)]   # embedding gather
    act = seq * width

    def norm() -> Kernel:
        return Kernel("other", 5.0 * act, act, 2 * width, act)

    ks.append(norm())
    head = width // heads
    for _ in range(layers):
        ks += [linear_kernel(seq, width, width) for _ in range(3)]                  # q, k, v
        ks.append(Kernel("matmul", 2.0 * heads * seq * seq * head, 2 * act, 0, heads * seq * seq))
        ks.append(Kernel("other", 5.0 * heads * seq * seq, heads * seq * seq, 0, heads * seq * seq))  # softmax
        ks.append(Kernel("matmul", 2.0 * heads * seq * seq * head, heads * seq * seq + act, 0, act))
        ks += [linear_kernel(seq, width, width), Kernel("elementwise", act, 2 * act, 0, act), norm()]
        ks += [linear_kernel(seq, width, ffn), Kernel("elementwise", 8.0 * seq * ffn, seq * ffn, 0, seq * ffn),
               linear_kernel(seq, ffn, width), Kernel("elementwise", act, 2 * act, 0, act), norm()]
    ks += [linear_kernel(1, width, width), linear_kernel(1, width, 2)]               # sst-2 head on [CLS]
    return ks


#: model id (as ``latencies.toml`` names them) -> its kernel list builder
BUILDERS: dict[str, Callable[[], list[Kernel]]] = {
    "mobilenet-v1": mobilenet_v1,
    "mobilenet-v2": mobilenet_v2,
    **{f"efficientnet-lite{i}": (lambda i=i: efficientnet_lite(i)) for i in LITE_PARAMS},
    "inception-v4": inception_v4,
    "inception-resnet-v2": inception_resnet_v2,
    "resnet-50": resnet50,
    "distilbert-base-seq128": distilbert,
}


@cache
def reference_kernels(model: str) -> tuple[Kernel, ...]:
    return tuple(BUILDERS[model]())
