"""Small torch models covering the layers users convert to CoreML, each with example inputs.

``ZOO[name]() -> (module, inputs)``; inputs are numpy arrays (float32, or int64 token ids).
Seeded: every call builds the same weights and inputs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

Case = tuple[nn.Module, tuple[np.ndarray, ...]]


def _x(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


class _Lambda(nn.Module):
    def __init__(self, fn: Callable, *layers: nn.Module):
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(layers)

    def forward(self, *args):  # noqa: ANN002, ANN201
        return self.fn(self.layers, *args)


def _fn(fn: Callable, *layers: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return _Lambda(fn, *layers).eval()


def _layer(make: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return make().eval()


# ---- recurrent ----------------------------------------------------------------------------------
class _Recurrent(nn.Module):
    """batch_first (2 layers, bidirectional by default); returns the sequence output and the
    final state(s)."""

    def __init__(self, kind: str, with_state: bool, hidden: int = 6, layers: int = 2, bidirectional: bool = True):
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
        self.kind, self.with_state = kind, with_state
        self.rnn = cls(8, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x, h0=None, c0=None):  # noqa: ANN001, ANN201
        if self.kind == "lstm":
            out, (h, c) = self.rnn(x, (h0, c0)) if self.with_state else self.rnn(x)
            return out, h, c
        out, h = self.rnn(x, h0) if self.with_state else self.rnn(x)
        return out, h


def _recurrent(kind: str, with_state: bool, batch: int, steps: int, layers: int = 2,
               bidirectional: bool = True) -> Case:
    torch.manual_seed(0)
    m = _Recurrent(kind, with_state, layers=layers, bidirectional=bidirectional).eval()
    inputs = [_x(batch, steps, 8)]
    if with_state:
        states = layers * (2 if bidirectional else 1)
        inputs.append(_x(states, batch, 6, seed=1, scale=0.5))
        if kind == "lstm":
            inputs.append(_x(states, batch, 6, seed=2, scale=0.5))
    return m, tuple(inputs)


# ---- the zoo ------------------------------------------------------------------------------------
def _image(c: int = 8, h: int = 8, w: int = 8, b: int = 2) -> tuple[np.ndarray]:
    return (_x(b, c, h, w),)


ZOO: dict[str, Callable[[], Case]] = {}

for _kind in ("lstm", "gru"):
    for _state in (False, True):
        for _b, _t in ((8, 8), (2, 5)):  # square [B, 8, 8] and a non-square sequence
            ZOO[f"{_kind}{'_h0' if _state else ''}_{_b}x{_t}"] = (
                lambda k=_kind, s=_state, b=_b, t=_t: _recurrent(k, s, b, t))

ZOO.update({
    "lstm_1layer": lambda: _recurrent("lstm", False, 2, 5, layers=1, bidirectional=False),
    "lstm_h0_1layer_bidir": lambda: _recurrent("lstm", True, 2, 5, layers=1),
    "gru_1layer": lambda: _recurrent("gru", False, 2, 5, layers=1, bidirectional=False),
    "gru_h0_1layer": lambda: _recurrent("gru", True, 2, 5, layers=1, bidirectional=False),
    "rnn_tanh": lambda: _recurrent("rnn", False, 2, 5, layers=1, bidirectional=False),
    # convolutions and resampling
    "conv_transpose": lambda: (_layer(lambda: nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)),
                               _image(h=5, w=7)),
    "conv_transpose_grouped": lambda: (_layer(lambda: nn.ConvTranspose2d(8, 6, (2, 3), stride=(2, 1), groups=2,
                                                                         dilation=(1, 2))), _image(h=5, w=6)),
    "upsample_nearest": lambda: (_layer(lambda: nn.Upsample(scale_factor=2, mode="nearest")), _image(h=3, w=5)),
    "upsample_nearest_size": lambda: (_layer(lambda: nn.Upsample(size=(7, 9), mode="nearest")), _image(h=3, w=5)),
    "upsample_bilinear": lambda: (_layer(lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
                                  _image(h=3, w=5)),
    "upsample_bilinear_align": lambda: (_layer(lambda: nn.Upsample(scale_factor=2, mode="bilinear",
                                                                   align_corners=True)), _image(h=3, w=5)),
    "upsample_bilinear_size": lambda: (_layer(lambda: nn.Upsample(size=(7, 9), mode="bilinear",
                                                                  align_corners=False)), _image(h=3, w=5)),
    "upsample_bilinear_size_align": lambda: (_layer(lambda: nn.Upsample(size=(7, 9), mode="bilinear",
                                                                        align_corners=True)), _image(h=3, w=5)),
    "upsample_bilinear_frac": lambda: (_layer(lambda: nn.Upsample(scale_factor=1.5, mode="bilinear",
                                                                  align_corners=False)), _image(h=4, w=6)),
    "upsample_nearest_frac": lambda: (_layer(lambda: nn.Upsample(scale_factor=1.5, mode="nearest")), _image(h=4, w=6)),
    "conv_transpose1d": lambda: (_layer(lambda: nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)), (_x(2, 8, 7),)),
    "pixel_shuffle": lambda: (_layer(lambda: nn.PixelShuffle(2)), _image(c=8, h=3, w=5)),
    "pixel_unshuffle": lambda: (_layer(lambda: nn.PixelUnshuffle(2)), _image(c=2, h=6, w=4)),
    # MobileNet / EfficientNet blocks: expansion, ReLU6, explicit zero pad, depthwise (einsum path
    # from 64 channels, per-tap below), projection, residual
    "mbconv": lambda: (_mbconv(16, 96, 3, 2), _image(c=16, h=12, w=10)),
    "mbconv_residual_5x5": lambda: (_mbconv(24, 144, 5, 1), _image(c=24, h=9, w=9)),
    "mbconv_narrow": lambda: (_mbconv(8, 32, 3, 1), _image(c=8, h=7, w=6)),
    # pooling
    "max_pool": lambda: (_layer(lambda: nn.MaxPool2d(3, 2, 1)), _image(h=9, w=8)),
    "max_pool_ceil": lambda: (_layer(lambda: nn.MaxPool2d(2, 2, ceil_mode=True)), _image(h=7, w=9)),
    "avg_pool": lambda: (_layer(lambda: nn.AvgPool2d(3, 2, 1)), _image(h=9, w=8)),
    "avg_pool_exclude_pad": lambda: (_layer(lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
                                     _image(h=9, w=8)),
    "adaptive_avg_pool_1": lambda: (_layer(lambda: nn.AdaptiveAvgPool2d(1)), _image(h=7, w=5)),
    "adaptive_avg_pool_2": lambda: (_layer(lambda: nn.AdaptiveAvgPool2d((2, 4))), _image(h=6, w=8)),
    "adaptive_avg_pool_uneven": lambda: (_layer(lambda: nn.AdaptiveAvgPool2d((3, 3))), _image(h=7, w=8)),
    "adaptive_max_pool_2": lambda: (_layer(lambda: nn.AdaptiveMaxPool2d((3, 2))), _image(h=6, w=8)),
    "max_pool1d": lambda: (_layer(lambda: nn.MaxPool1d(3, 2)), (_x(2, 4, 11),)),
    # normalization
    "group_norm": lambda: (_layer(lambda: nn.GroupNorm(4, 8)), _image()),
    "instance_norm": lambda: (_layer(lambda: nn.InstanceNorm2d(8, affine=True)), _image()),
    "layer_norm": lambda: (_layer(lambda: nn.LayerNorm(8)), (_x(2, 5, 8),)),
    "layer_norm_2d": lambda: (_layer(lambda: nn.LayerNorm([8, 8])), _image()),
    "batch_norm": lambda: (_bn(), _image()),
    # activations
    "prelu": lambda: (_prelu(), _image()),
    "prelu_shared": lambda: (_layer(lambda: nn.PReLU()), _image()),
    "gelu": lambda: (_layer(lambda: nn.GELU()), _image(b=1)),
    "gelu_tanh": lambda: (_layer(lambda: nn.GELU(approximate="tanh")), _image(b=1)),
    "silu": lambda: (_layer(lambda: nn.SiLU()), _image(b=1)),
    "hardswish": lambda: (_layer(lambda: nn.Hardswish()), (_x(1, 8, 8, 8, scale=4),)),
    "hardsigmoid": lambda: (_layer(lambda: nn.Hardsigmoid()), (_x(1, 8, 8, 8, scale=4),)),
    "sigmoid_tanh": lambda: (_fn(lambda ls, x: torch.sigmoid(x) + torch.tanh(x)), (_x(1, 8, 8, 8, scale=3),)),
    "softmax": lambda: (_layer(lambda: nn.Softmax(dim=1)), (_x(2, 8, 5, scale=3),)),
    "log_softmax": lambda: (_layer(lambda: nn.LogSoftmax(dim=-1)), (_x(2, 8, 5, scale=3),)),
    "leaky_relu_elu": lambda: (_fn(lambda ls, x: torch.nn.functional.leaky_relu(x, 0.1) + torch.nn.functional.elu(x)),
                               _image(b=1)),
    "softplus_mish": lambda: (_fn(lambda ls, x: torch.nn.functional.softplus(x) + torch.nn.functional.mish(x)),
                              _image(b=1)),
    # embeddings and attention
    "embedding": lambda: (_layer(lambda: nn.Embedding(20, 8)),
                          (np.random.default_rng(0).integers(0, 20, (2, 7)).astype(np.int64),)),
    "multihead_attention": lambda: (_fn(lambda ls, x: ls[0](x, x, x, need_weights=False)[0],
                                        nn.MultiheadAttention(8, 2, batch_first=True)), (_x(2, 5, 8),)),
    "transformer_encoder_layer": lambda: (_layer(lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                                                    batch_first=True)),
                                          (_x(2, 5, 8),)),
    # linear algebra
    "einsum": lambda: (_fn(lambda ls, a, b: torch.einsum("bij,bjk->bik", a, b) + torch.einsum("bik->bki", a @ b).mT),
                       (_x(2, 3, 4), _x(2, 4, 5, seed=1))),
    "einsum_outer": lambda: (_fn(lambda ls, a, b: torch.einsum("bi,bj->bij", a, b)), (_x(2, 3), _x(2, 4, seed=1))),
    "matmul_bmm": lambda: (_fn(lambda ls, a, b: torch.bmm(a, b) + torch.matmul(a, b)), (_x(2, 3, 4), _x(2, 4, 5, seed=1))),
    "linear": lambda: (_layer(lambda: nn.Linear(8, 5)), (_x(2, 3, 8),)),
    # tensor manipulation
    "split_chunk": lambda: (_fn(lambda ls, x: tuple(p * (i + 1) for i, p in enumerate(
        list(torch.split(x, [2, 6], dim=1)) + list(torch.chunk(x, 3, dim=-1))))), _image(b=1)),
    "slice_index_select": lambda: (_fn(lambda ls, x: torch.cat([
        x[:, 1:5:2, ::3], torch.index_select(x, 1, torch.tensor([0, 3, 1]))[:, :, :3]], dim=1)), _image(b=1)),
    "concat_stack": lambda: (_fn(lambda ls, a, b: torch.cat([torch.stack([a, b], 1).flatten(1, 2), a], 1)),
                             (_x(2, 3, 4), _x(2, 3, 4, seed=1))),
    "permute_flatten": lambda: (_fn(lambda ls, x: x.permute(0, 2, 3, 1).flatten(1).unsqueeze(1)), _image(b=1)),
    # reductions
    "reductions": lambda: (_fn(lambda ls, x: (x.sum(1), x.mean((2, 3)), x.amax(-1), x.amin(2, keepdim=True),
                                              x.argmax(1), x.var(1), x.std(-1),
                                              torch.linalg.vector_norm(x, dim=1), torch.logsumexp(x, 2))),
                           (_x(2, 4, 5, 3),)),
    # element-wise logic
    "clamp_where_compare": lambda: (_fn(lambda ls, x, y: (
        torch.clamp(x, -0.5, 0.7), torch.where(x > y, x, y * 2), (x >= y).float() + (x < 0).float(),
        torch.where((x != y) & (x <= 0.3), x - y, torch.zeros_like(x)), torch.minimum(x, y), torch.maximum(x, y))),
        (_x(2, 3, 4), _x(2, 3, 4, seed=1))),
    "elementwise_math": lambda: (_fn(lambda ls, x: (torch.exp(x * 0.5), torch.log(x.abs() + 1), torch.sqrt(x.abs()),
                                                    torch.rsqrt(x.abs() + 0.1), x ** 2, torch.floor(x), torch.ceil(x),
                                                    torch.sin(x), torch.cos(x), torch.erf(x), x.reciprocal())),
                                 (_x(2, 3, 4, scale=2),)),
})


class _MBConv(nn.Module):
    def __init__(self, cin: int, hidden: int, k: int, stride: int):
        super().__init__()
        pad = (k // 2, k // 2, k // 2, k // 2) if stride == 1 else (k // 2 - 1 + k % 2, k // 2, k // 2 - 1 + k % 2, k // 2)
        self.expand = nn.Sequential(nn.Conv2d(cin, hidden, 1), nn.ReLU6())
        self.dw = nn.Sequential(nn.ZeroPad2d(pad), nn.Conv2d(hidden, hidden, k, stride, groups=hidden), nn.ReLU6())
        self.project = nn.Conv2d(hidden, cin, 1)
        self.residual = stride == 1

    def forward(self, x):  # noqa: ANN001, ANN201
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


def _mbconv(cin: int, hidden: int, k: int, stride: int) -> nn.Module:
    torch.manual_seed(0)
    return _MBConv(cin, hidden, k, stride).eval()


def _prelu() -> nn.Module:
    torch.manual_seed(0)
    m = nn.PReLU(8)
    with torch.no_grad():  # one slope per channel, all different (equal ones fold to leaky_relu)
        m.weight.uniform_(0.0, 0.5)
    return m.eval()


def _bn() -> nn.Module:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():  # non-trivial statistics, as a trained model has
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn.eval()


#: layers coremltools 9 itself fails to convert (through edgeport's convert_module), with a piece
#: of its message: the emulator never sees a program for them
CONVERSION_FAILS: dict[str, tuple[Callable[[], Case], str]] = {
    "rnn_bidirectional": (lambda: _recurrent("rnn", True, 2, 5), "Bidirectional simple RNN not supported"),
    "prod": (lambda: (_fn(lambda ls, x: x.prod(-1)), (_x(2, 4, 5),)),
             "PyTorch convert function for op 'prod' not implemented"),
}


#: where coremltools 9's program computes something other than torch, the reference the program
#: itself defines (output name -> array from the inputs), and why. The emulator is held to the
#: program; the difference from torch is the converter's.
CONVERTER_DEVIATIONS: dict[str, tuple[str, Callable[..., dict[str, np.ndarray]]]] = {
    "gelu_tanh": ("GELU(approximate='tanh') is converted to gelu mode EXACT",
                  lambda x: {"out0": torch.nn.functional.gelu(torch.from_numpy(x)).numpy()}),
    "elementwise_math": ("reciprocal is converted to inverse with epsilon 1e-4: 1 / (x + 1e-4)",
                         lambda x: {"out10": (1.0 / (x.astype(np.float64) + 1e-4)).astype(np.float32)}),
}
