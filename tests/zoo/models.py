"""A zoo of small, user-style PyTorch models for edgeport's failure matrix.

Each factory returns an :class:`edgeport.source.ModelSource` with held-out eval data (48 real
samples from scikit-learn's digits / breast_cancer / wine) and a separate calibration set (64
training samples). Weights are seeded and briefly trained (a fixed number of epochs, seconds each) on the
training split; the trained state dicts are cached in the temp folder, keyed by this file's hash, so the
many CLI calls of ``run_matrix.py`` train each model once.

Use: ``edgeport export tests/zoo/models.py:gru_digits --target android-tflite --json -o out``.

Layer coverage (model -> layers):

==================== =========================================================================
mlp_cancer           Linear, LayerNorm, GELU (exact, erf), Dropout            [B,30] -> logits
gru_digits           GRU 2-layer bidirectional batch_first, no h0, square [B,8,8]; slice, cat
gru_digits_tall      same GRU on a non-square [B,16,4] input (digit rows split in halves)
lstm_ctx             LSTM 2-layer bidir batch_first WITH (h0, c0) computed from a 2nd input;
                     Tanh, reshape/permute, non-square [B,16,4] + ctx [B,8]
embed_lstm           Embedding on int64 tokens [B,64], LSTM 1-layer (no state), max/mean reduce
transformer_digits   Linear tokens + positional param, TransformerEncoderLayer (relu),
                     MultiheadAttention pooling with a learned query (expand), LayerNorm
cnn_blocks           Conv2d, BatchNorm2d, depthwise + grouped conv, Hardswish, SiLU,
                     squeeze-excite (AdaptiveAvgPool, Sigmoid, residual mul), residual add,
                     MaxPool2d, AvgPool2d, flatten, Softmax second output
unet_denoise         tiny U-Net: GroupNorm, InstanceNorm2d, MaxPool, ConvTranspose2d,
                     Upsample nearest / bilinear align_corners False and True, PixelShuffle,
                     concat skips, per-pixel [B,1,8,8] Sigmoid output
conv1d_signal        Conv1d (stride, dilation), PReLU, BatchNorm1d, GELU (tanh), MaxPool1d,
                     AdaptiveMax/AvgPool1d; two outputs: logits + LogSoftmax
two_input_heads      image [B,1,8,8] + tabular [B,6] inputs; split/chunk/index_select/slice,
                     einsum, bmm, matmul, clamp, where, comparisons, amax/sum reductions;
                     outputs: logits [B,10] and a regression scalar per sample [B]
wine_regressor       wine (12 features -> alcohol): feature-token einsum, hand-written
                     attention (matmul, softmax), Tanh, a scalar-per-sample [B] output
==================== =========================================================================

Every model is batch-agnostic (reshapes use ``x.shape[0]`` / ``-1``): "dynamic batch" in torch;
edgeport exports at batch 1 and runs samples one at a time.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeport.data import Dataset
from edgeport.source import ModelSource

EVAL_N = 48
CALIB_N = 64
TRAIN_SECONDS = 120.0  # safety cap only; the epoch counts below are what is trained
_HERE = Path(__file__).resolve()
_CACHE = Path(os.environ.get("EDGEPORT_ZOO_CACHE", Path(tempfile.gettempdir()) / "edgeport-zoo-cache"))


# ------------------------------------------------------------------------------------------------
# real data
def _split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, calib, eval) index arrays: eval and calib are disjoint held-out/training subsets."""
    idx = np.random.default_rng(seed).permutation(n)
    ev, tr = idx[:EVAL_N], idx[EVAL_N:]
    return tr, tr[:CALIB_N], ev


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _standardized(loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = loader()
    x = d.data.astype(np.float32)
    tr, _, _ = _split(len(x))
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    return ((x - mu) / sd).astype(np.float32), d.target.astype(np.int64), tr


# ------------------------------------------------------------------------------------------------
# training (seeded, time-boxed) with a cache of the trained weights
def _code_key() -> str:
    return hashlib.sha256(_HERE.read_bytes()).hexdigest()[:12]


def _trained(name: str, module: nn.Module, train_inputs: tuple[np.ndarray, ...], targets: np.ndarray,
             loss_kind: str, epochs: int = 40, lr: float = 1e-2, batch: int = 64) -> nn.Module:
    """Train ``module`` briefly (seeded Adam, at most TRAIN_SECONDS), or load the cached result."""
    path = _CACHE / f"{name}-{_code_key()}.pt"
    if path.is_file():
        module.load_state_dict(torch.load(path, weights_only=True))
        return module.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the trained weights must not depend on the machine's core count
    try:
        return _fit(path, module, train_inputs, targets, loss_kind, epochs, lr, batch)
    finally:
        torch.set_num_threads(threads)


def _fit(path: Path, module: nn.Module, train_inputs: tuple[np.ndarray, ...], targets: np.ndarray,
         loss_kind: str, epochs: int, lr: float, batch: int) -> nn.Module:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.from_numpy(np.ascontiguousarray(a)) for a in train_inputs]
    y = torch.from_numpy(targets)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    t0 = time.perf_counter()
    n = len(y)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            b = perm[s:s + batch]
            out = module(*(x[b] for x in xs))
            out = out[0] if isinstance(out, tuple) else out
            if loss_kind == "ce":
                loss = F.cross_entropy(out, y[b])
            else:
                loss = F.mse_loss(out, y[b].float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if time.perf_counter() - t0 > TRAIN_SECONDS:
            break
    module.eval()
    _CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(module.state_dict(), tmp)
    tmp.replace(path)
    return module


def _source(name: str, module: nn.Module, inputs: dict[str, np.ndarray], labels: np.ndarray | None,
            cal: np.ndarray, ev: np.ndarray, output_names: tuple[str, ...], task: str,
            description: str, output_labels: dict[str, np.ndarray] | None = None) -> ModelSource:
    """``labels``: the first output's; ``output_labels``: labels of other outputs, by name."""
    names = tuple(inputs)
    eval_data = Dataset({k: v[ev] for k, v in inputs.items()},
                        None if labels is None else labels[ev], description=f"{description}, {EVAL_N} held-out",
                        output_labels={k: v[ev] for k, v in (output_labels or {}).items()})
    calib = Dataset({k: v[cal] for k, v in inputs.items()}, description=f"{description}, {CALIB_N} train")
    return ModelSource(name=name, module=module.eval(), example_inputs=tuple(v[ev[:1]] for v in inputs.values()),
                       input_names=names, output_names=output_names, task=task, eval_data=eval_data,
                       calibration_data=calib, description=description)


# ================================================================================================
class MLPCancer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.LayerNorm(30), nn.Linear(30, 64), nn.GELU(), nn.Dropout(0.2),
                                 nn.Linear(64, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)


def mlp_cancer() -> ModelSource:
    from sklearn.datasets import load_breast_cancer

    x, y, tr = _standardized(load_breast_cancer)
    _, cal, ev = _split(len(x))
    m = _trained("mlp_cancer", MLPCancer(), (x[tr],), y[tr], "ce", epochs=40, lr=3e-3)
    return _source("mlp_cancer", m, {"x": x}, y, cal, ev, ("logits",), "classification",
                   "sklearn breast_cancer (standardized)")


# ------------------------------------------------------------------------------------------------
class GRUClassifier(nn.Module):
    def __init__(self, features: int, hidden: int = 24) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(4 * hidden, 10)

    def forward(self, x):
        seq, _ = self.gru(x)                       # [B, T, 2H]
        last = seq[:, -1, :]                       # slice
        mean = seq.mean(dim=1)                     # reduction
        return self.head(torch.cat([last, mean], dim=1))


def gru_digits() -> ModelSource:
    """GRU over the 8 rows of a digit: a square [B, 8, 8] input (T == F)."""
    x, y = _digits()
    tr, cal, ev = _split(len(x))
    m = _trained("gru_digits", GRUClassifier(8), (x[tr],), y[tr], "ce", epochs=12)
    return _source("gru_digits", m, {"x": x}, y, cal, ev, ("logits",), "classification",
                   "sklearn digits rows [8x8]")


def gru_digits_tall() -> ModelSource:
    """The same GRU over half-rows: a non-square [B, 16, 4] input."""
    x, y = _digits()
    x = x.reshape(len(x), 16, 4)
    tr, cal, ev = _split(len(x))
    m = _trained("gru_digits_tall", GRUClassifier(4), (x[tr],), y[tr], "ce", epochs=12)
    return _source("gru_digits_tall", m, {"x": x}, y, cal, ev, ("logits",), "classification",
                   "sklearn digits half-rows [16x4]")


# ------------------------------------------------------------------------------------------------
class LSTMWithState(nn.Module):
    """An LSTM whose initial (h0, c0) is computed from a context vector (a conditioned LSTM)."""

    def __init__(self, hidden: int = 24) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.hidden = hidden
        self.init = nn.Linear(8, 2 * 4 * hidden)
        self.lstm = nn.LSTM(4, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 10)

    def forward(self, seq, ctx):
        b = seq.shape[0]
        hc = torch.tanh(self.init(ctx)).reshape(b, 2, 4, self.hidden)      # [B, 2, L*D, H]
        h0 = hc[:, 0].permute(1, 0, 2).contiguous()                         # [L*D, B, H]
        c0 = hc[:, 1].permute(1, 0, 2).contiguous()
        out, _ = self.lstm(seq, (h0, c0))
        return self.head(out[:, -1])


def lstm_ctx() -> ModelSource:
    x, y = _digits()
    seq = x.reshape(len(x), 16, 4)
    ctx = x.mean(axis=1).astype(np.float32)                                 # column means [B, 8]
    tr, cal, ev = _split(len(x))
    m = _trained("lstm_ctx", LSTMWithState(), (seq[tr], ctx[tr]), y[tr], "ce", epochs=12)
    return _source("lstm_ctx", m, {"seq": seq, "ctx": ctx}, y, cal, ev, ("logits",), "classification",
                   "sklearn digits half-rows [16x4] + column means [8]")


# ------------------------------------------------------------------------------------------------
class EmbedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.emb = nn.Embedding(17, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(64, 10)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))                               # no initial state
        return self.head(torch.cat([out.amax(dim=1), out.mean(dim=1)], dim=-1))


def embed_lstm() -> ModelSource:
    """Digits as 64 int64 tokens (pixel intensities 0..16): Embedding + LSTM."""
    x, y = _digits()
    tokens = np.rint(x.reshape(len(x), 64) * 16).astype(np.int64)
    tr, cal, ev = _split(len(x))
    m = _trained("embed_lstm", EmbedLSTM(), (tokens[tr],), y[tr], "ce", epochs=10, lr=5e-3)
    return _source("embed_lstm", m, {"tokens": tokens}, y, cal, ev, ("logits",), "classification",
                   "sklearn digits as 64 intensity tokens")


# ------------------------------------------------------------------------------------------------
class TransformerDigits(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.proj = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.randn(1, 8, d) * 0.1)
        self.enc = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.1, batch_first=True)
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.1)
        self.pool = nn.MultiheadAttention(d, 2, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.enc(self.proj(x) + self.pos)
        q = self.query.expand(x.shape[0], -1, -1)
        pooled, _ = self.pool(q, h, h, need_weights=False)
        return self.head(self.norm(pooled.flatten(1)))


def transformer_digits() -> ModelSource:
    x, y = _digits()
    tr, cal, ev = _split(len(x))
    m = _trained("transformer_digits", TransformerDigits(), (x[tr],), y[tr], "ce", epochs=20, lr=3e-3)
    return _source("transformer_digits", m, {"x": x}, y, cal, ev, ("logits",), "classification",
                   "sklearn digits rows [8x8] as tokens")


# ------------------------------------------------------------------------------------------------
class CNNBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                nn.Hardswish(), nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32))
        self.skip = nn.Conv2d(16, 32, 1)
        self.grouped = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.BatchNorm2d(32), nn.SiLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 8, 1), nn.ReLU(), nn.Conv2d(8, 32, 1),
                                nn.Sigmoid())
        self.pool_a = nn.MaxPool2d(2)
        self.pool_b = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        h = self.stem(x)
        h = self.dw(h) + self.skip(h)              # residual add
        h = self.pool_a(h)                         # 8 -> 4
        g = self.grouped(h)
        g = g * self.se(g)                         # squeeze-excite: residual mul
        h = self.pool_b(g + h)                     # 4 -> 2
        logits = self.head(torch.flatten(self.gap(h), 1))
        return logits, torch.softmax(logits, dim=-1)


def cnn_blocks() -> ModelSource:
    x, y = _digits()
    x = x[:, None]
    tr, cal, ev = _split(len(x))
    m = _trained("cnn_blocks", CNNBlocks(), (x[tr],), y[tr], "ce", epochs=10, lr=3e-3)
    return _source("cnn_blocks", m, {"x": x}, y, cal, ev, ("logits", "probs"), "classification",
                   "sklearn digits [1x8x8]")


# ------------------------------------------------------------------------------------------------
class TinyUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)

        def block(cin, cout, norm):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), norm, nn.ReLU())

        self.e1 = block(1, 16, nn.GroupNorm(4, 16))                   # 8x8
        self.e2 = block(16, 32, nn.InstanceNorm2d(32, affine=True))   # 4x4
        self.mid = block(32, 32, nn.BatchNorm2d(32))                  # 2x2
        self.up2 = nn.ConvTranspose2d(32, 32, 2, stride=2)            # 2 -> 4
        self.d2 = block(64, 32, nn.BatchNorm2d(32))
        self.up_bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.up_bilinear_ac = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.to_shuffle = nn.Conv2d(32, 4 * 8, 1)
        self.shuffle = nn.PixelShuffle(2)                             # 4 -> 8, 8 channels
        self.reduce = nn.Conv2d(32, 8, 1)
        self.d1 = block(16 + 8 * 4, 16, nn.GroupNorm(4, 16))
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([self.up2(m), e2], dim=1))
        r = self.reduce(d2)
        ups = [self.up_bilinear(r), self.up_bilinear_ac(r), self.up_nearest(r), self.shuffle(self.to_shuffle(d2))]
        d1 = self.d1(torch.cat([e1, *ups], dim=1))
        return torch.sigmoid(self.out(d1))


def unet_denoise() -> ModelSource:
    """Denoise digits: noisy [B,1,8,8] in, clean per-pixel [B,1,8,8] out."""
    x, _ = _digits()
    clean = x[:, None]
    noisy = np.clip(clean + np.random.default_rng(7).normal(0, 0.25, clean.shape), 0, 1).astype(np.float32)
    tr, cal, ev = _split(len(x))
    m = _trained("unet_denoise", TinyUNet(), (noisy[tr],), clean[tr].astype(np.float32), "mse", epochs=10)
    return _source("unet_denoise", m, {"x": noisy}, None, cal, ev, ("clean",), "generic",
                   "sklearn digits + gaussian noise [1x8x8]", output_labels={"clean": clean})


# ------------------------------------------------------------------------------------------------
class Conv1dSignal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.c1 = nn.Conv1d(1, 16, 5, padding=2)
        self.act1 = nn.PReLU(16)
        self.c2 = nn.Conv1d(16, 32, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm1d(32)
        self.act2 = nn.GELU(approximate="tanh")
        self.c3 = nn.Conv1d(32, 32, 3, padding=2, dilation=2)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.act1(self.c1(x))                              # [B,16,64]
        h = F.max_pool1d(self.act2(self.bn2(self.c2(h))), 2)    # [B,32,16]
        h = F.relu(self.c3(h)) + h
        feat = torch.cat([F.adaptive_max_pool1d(h, 1), F.adaptive_avg_pool1d(h, 1)], dim=1).flatten(1)
        logits = self.head(feat)
        return logits, F.log_softmax(logits, dim=-1)


def conv1d_signal() -> ModelSource:
    x, y = _digits()
    sig = x.reshape(len(x), 1, 64)
    tr, cal, ev = _split(len(x))
    m = _trained("conv1d_signal", Conv1dSignal(), (sig[tr],), y[tr], "ce", epochs=15)
    return _source("conv1d_signal", m, {"x": sig}, y, cal, ev, ("logits", "log_probs"), "classification",
                   "sklearn digits as a 64-sample signal")


# ------------------------------------------------------------------------------------------------
class TwoInputHeads(nn.Module):
    """Image + tabular features -> class logits and a regression value per sample."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(9)
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))   # [B,16,4,4]
        self.tab = nn.Linear(6, 16)
        self.mix = nn.Parameter(torch.randn(16, 16) * 0.2)
        self.att = nn.Linear(16, 16)
        self.cls = nn.Linear(32, 10)
        self.reg = nn.Linear(32, 1)
        self.register_buffer("pick", torch.tensor([0, 2, 4, 5]))

    def forward(self, image, tab):
        b = image.shape[0]
        f = self.conv(image).reshape(b, 16, -1).permute(0, 2, 1)        # [B,16 pos,16 ch]
        t = torch.tanh(self.tab(tab))                                   # [B,16]
        # attention of the tabular query over image positions: bmm + softmax
        scores = torch.bmm(f, self.att(t).unsqueeze(-1)).squeeze(-1)    # [B,16]
        w = torch.softmax(scores / 4.0, dim=-1)
        pooled = torch.einsum("bp,bpc->bc", w, f)                        # [B,16]
        mixed = torch.matmul(pooled, self.mix)                          # matmul with a weight
        lo, hi = torch.chunk(mixed, 2, dim=1)
        a, c = torch.split(t, [10, 6], dim=1)
        sel = torch.index_select(tab, 1, self.pick)                     # [B,4]
        gate = torch.where(sel.sum(1, keepdim=True) > 0, torch.ones_like(lo), 0.5 * torch.ones_like(lo))
        h = torch.cat([lo * gate, hi, a, c], dim=1)                     # [B,32]
        h = torch.clamp(h, -3.0, 3.0) + f.amax(dim=1)[:, :1] * 0.1
        logits = self.cls(h)
        value = self.reg(h)[:, 0]                                       # [B] scalar per sample
        return logits, value


def _tab_features(x: np.ndarray) -> np.ndarray:
    """Six hand-made stroke features of a digit image [N,8,8] (standardized)."""
    ink = x > 0.5
    feats = np.stack([x.mean((1, 2)), x[:, :4].mean((1, 2)) - x[:, 4:].mean((1, 2)),
                      x[:, :, :4].mean((1, 2)) - x[:, :, 4:].mean((1, 2)), ink.sum((1, 2)) / 64.0,
                      x.std((1, 2)), x[:, 2:6, 2:6].mean((1, 2))], axis=1).astype(np.float32)
    return ((feats - feats.mean(0)) / (feats.std(0) + 1e-6)).astype(np.float32)


def two_input_heads() -> ModelSource:
    x, y = _digits()
    image, tab = x[:, None], _tab_features(x)
    ink = ((x > 0.5).sum((1, 2)) / 16.0).astype(np.float32)          # regression target ~0..3
    tr, cal, ev = _split(len(x))
    m = TwoInputHeads()
    path = _CACHE / f"two_input_heads-{_code_key()}.pt"
    if path.is_file():
        m.load_state_dict(torch.load(path, weights_only=True))
    else:
        torch.manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        xi, xt = torch.from_numpy(image[tr]), torch.from_numpy(tab[tr])
        yy, yi = torch.from_numpy(y[tr]), torch.from_numpy(ink[tr])
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        m.train()
        for _ in range(20):
            perm = torch.randperm(len(yy), generator=gen)
            for s in range(0, len(yy), 64):
                b = perm[s:s + 64]
                logits, value = m(xi[b], xt[b])
                loss = F.cross_entropy(logits, yy[b]) + F.mse_loss(value, yi[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if time.perf_counter() - t0 > TRAIN_SECONDS:
                break
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(m.state_dict(), tmp)
        tmp.replace(path)
    return _source("two_input_heads", m, {"image": image, "tab": tab}, y, cal, ev, ("logits", "ink"),
                   "classification", "sklearn digits image + 6 stroke features", output_labels={"ink": ink})


# ------------------------------------------------------------------------------------------------
class WineRegressor(nn.Module):
    """Feature-token attention regressor: 12 wine measurements -> alcohol (one value per sample)."""

    def __init__(self, features: int = 12, d: int = 16) -> None:
        super().__init__()
        torch.manual_seed(10)
        self.tok_w = nn.Parameter(torch.randn(features, d) * 0.3)
        self.tok_b = nn.Parameter(torch.zeros(features, d))
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        tok = torch.einsum("bf,fd->bfd", x, self.tok_w) + self.tok_b    # [B,F,D]
        q, k, v = self.qkv(tok).chunk(3, dim=-1)
        att = torch.softmax(torch.matmul(q, k.transpose(1, 2)) / 4.0, dim=-1)
        h = (torch.matmul(att, v) + tok).mean(dim=1)                   # residual + reduction
        return self.out(h).squeeze(-1)                                 # [B]


def wine_regressor() -> ModelSource:
    from sklearn.datasets import load_wine

    x, _, tr = _standardized(load_wine)
    feats, target = x[:, 1:].copy(), x[:, 0].copy()                   # predict (standardized) alcohol
    n = len(x)
    idx = np.random.default_rng(0).permutation(n)
    ev, trn = idx[:EVAL_N], idx[EVAL_N:]
    cal = trn[:CALIB_N]
    m = _trained("wine_regressor", WineRegressor(), (feats[trn],), target[trn], "mse", epochs=200, batch=32)
    return _source("wine_regressor", m, {"x": feats}, None, cal, ev, ("alcohol",), "generic",
                   "sklearn wine, 12 features -> alcohol")


ZOO = ("mlp_cancer", "gru_digits", "gru_digits_tall", "lstm_ctx", "embed_lstm", "transformer_digits",
       "cnn_blocks", "unet_denoise", "conv1d_signal", "two_input_heads", "wine_regressor")
