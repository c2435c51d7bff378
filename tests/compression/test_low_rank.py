"""Low-rank factorization by truncated SVD: the chosen ranks, exact sizes, outputs close where
the kept energy says so, and every layer left as it was named with its reason."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeport.compression import parse_step
from edgeport.compression.base import StepContext
from edgeport.compression.low_rank import LowRankFactorization
from edgeport.errors import ConfigError


def _example(source):
    return tuple(torch.from_numpy(x) for x in source.example_inputs)


def _low_rank(out_f, in_f, rank, noise=0.0):
    g = torch.Generator().manual_seed(out_f * 7 + in_f)
    w = torch.randn(out_f, rank, generator=g) @ torch.randn(rank, in_f, generator=g) / rank ** 0.5
    return w + noise * torch.randn(out_f, in_f, generator=g)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(128, 256)
        self.down = nn.Linear(256, 64)
        self.head = nn.Linear(64, 10)
        with torch.no_grad():
            self.up.weight.copy_(_low_rank(256, 128, 8))
            self.down.weight.copy_(_low_rank(64, 256, 12, noise=1e-3))

    def forward(self, x):
        return self.head(torch.relu(self.down(torch.relu(self.up(x)))))


def test_rank_follows_the_energy_and_outputs_stay_close():
    torch.manual_seed(0)
    model = Mlp().eval()
    x = torch.randn(32, 128)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, rep = LowRankFactorization(energy=0.999).apply(model, StepContext(teacher=model, example=(x,)))
    s = rep.stats
    up, down = s["factorized"]
    assert (up["module"], up["in"], up["out"], up["rank"]) == ("up", 128, 256, 8)  # exactly rank 8
    assert down["module"] == "down" and down["rank"] <= 13 and down["kept_energy"] >= 0.999
    assert s["skipped"] == [{"module": "head", "in": 64, "out": 10, "reason": "min(in, out) = 10 < min_features 32"}]
    # each pair is in->r (no bias) then r->out (the bias)
    assert isinstance(small.up, nn.Sequential) and small.up[0].bias is None
    assert (small.up[0].out_features, small.up[1].in_features) == (8, 8)
    assert torch.equal(small.up[1].bias, model.up.bias)
    saved = (128 * 256 - 8 * (128 + 256)) + (256 * 64 - down["rank"] * (256 + 64))
    assert s["params_before"] - s["params_after"] == saved
    assert s["macs_after"] < 0.25 * s["macs_before"]
    with torch.no_grad():
        want, got = model(x), small(x)
    # the dropped noise keeps 1e-6 of down's energy: ~0.16 % of the largest logit (measured)
    assert float((want - got).abs().max()) < 5e-3 * float(want.abs().max())
    # the input module is untouched
    assert isinstance(model.up, nn.Linear)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_layer_is_skipped_when_the_pair_would_not_be_smaller(text_transformer):
    module, context = text_transformer.module, StepContext(teacher=text_transformer.module,
                                                           example=_example(text_transformer))
    same, rep = LowRankFactorization(energy=0.999).apply(module, context)
    s = rep.stats
    # trained weights keep 0.999 of their energy only near full rank: no pair is smaller
    assert s["factorized"] == [] and s["params_after"] == s["params_before"] == 133380
    q = next(e for e in s["skipped"] if e["module"] == "layers.0.attn.q")
    assert q["rank"] * (64 + 64) >= 64 * 64 and q["reason"].startswith("not smaller: rank")
    assert rep.note.startswith("no layer was factorized")
    with torch.no_grad():
        assert torch.equal(same(*context.example), module(*context.example))


def test_text_transformer_at_energy_0_9(text_transformer):
    module = text_transformer.module
    context = StepContext(teacher=module, example=_example(text_transformer))
    small, rep = LowRankFactorization(energy=0.9).apply(module, context)
    s = rep.stats
    assert s["layers_factorized"] == 12  # q, k, v, out, ff.0, ff.2 of both layers; the 4-class head is skipped
    assert all(e["kept_energy"] >= 0.9 and e["rank"] * (e["in"] + e["out"]) < e["in"] * e["out"]
               for e in s["factorized"])
    assert [e["module"] for e in s["skipped"]] == ["head"]
    assert s["params_after"] == 123780 and s["macs_after"] < 0.9 * s["macs_before"]
    ids = torch.from_numpy(text_transformer.eval_data.inputs["input_ids"][:128])
    with torch.no_grad():
        want, got = module(ids), small(ids)
    assert got.shape == want.shape == (128, 4)
    assert float((want.argmax(1) == got.argmax(1)).float().mean()) >= 0.95  # measured 0.98


def test_rank_ratio_and_output_layers(digits):
    context = StepContext(teacher=digits.module, example=_example(digits))
    small, rep = LowRankFactorization(rank_ratio=0.25).apply(digits.module, context)
    (fc,) = rep.stats["factorized"]
    assert (fc["module"], fc["in"], fc["out"], fc["rank"]) == ("12", 384, 128, 32)
    assert rep.stats["params_after"] == 124970 - 384 * 128 + 32 * (384 + 128)
    _, head_rep = LowRankFactorization(rank_ratio=0.25, min_features=4).apply(digits.module, context)
    assert head_rep.stats["skipped"][0]["module"] == "14"
    assert head_rep.stats["skipped"][0]["reason"].startswith("produces a model output")
    _, all_rep = LowRankFactorization(rank_ratio=0.25, min_features=4, include_outputs=True).apply(
        digits.module, context)
    assert [e["module"] for e in all_rep.stats["factorized"]] == ["12", "14"]
    with torch.no_grad():
        assert small(*context.example).shape == (1, 10)


def test_pointwise_convolutions_are_factorized_too():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 96, 1, stride=2, padding=1),
                          nn.ReLU(), nn.Conv2d(96, 8, 3)).eval()
    with torch.no_grad():
        model[2].weight.copy_(_low_rank(96, 64, 6)[:, :, None, None])
    x = torch.randn(2, 3, 10, 10)
    small, rep = LowRankFactorization(energy=0.9999).apply(model, StepContext(teacher=model, example=(x,)))
    (pw,) = rep.stats["factorized"]
    assert (pw["module"], pw["rank"]) == ("2", 6)
    first, second = small[2]
    assert (first.stride, first.padding, second.stride, second.kernel_size) == ((2, 2), (1, 1), (1, 1), (1, 1))
    with torch.no_grad():
        want, got = model(x), small(x)
    assert got.shape == want.shape and torch.allclose(want, got, atol=1e-4)


def test_layers_whose_weights_are_read_directly_are_left_as_they_are():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(64, 64)
            self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
            self.head = nn.Linear(64, 3)

        def forward(self, x):
            h = self.proj(x)
            h = h + self.attn(h, h, h, need_weights=False)[0]
            return self.head(h.mean(1) * self.proj.weight.mean())  # proj's weight read directly

    torch.manual_seed(0)
    model = Tied().eval()
    x = torch.randn(2, 5, 64)
    small, rep = LowRankFactorization(rank_ratio=0.1, min_features=3).apply(model, StepContext(teacher=model, example=(x,)))
    reasons = {e["module"]: e["reason"] for e in rep.stats["skipped"]}
    assert reasons["attn.out_proj"] == "inside nn.MultiheadAttention 'attn', which reads its weights directly"
    assert reasons["proj"].startswith("factorizing it forward() fails afterwards (AttributeError")
    assert reasons["head"].startswith("produces a model output")
    assert isinstance(small.proj, nn.Linear)  # put back as it was
    with torch.no_grad():
        assert torch.equal(small(x), model(x))


def test_settings_are_checked():
    step = parse_step({"kind": "low_rank", "energy": 0.9, "min_features": 16}, "test")
    assert isinstance(step, LowRankFactorization) and step.rank_ratio is None
    for bad in ({}, {"energy": 0.9, "rank_ratio": 0.5}, {"energy": 1.5}, {"rank_ratio": 0}, {"energies": 0.9}):
        with pytest.raises(ConfigError):
            parse_step({"kind": "low_rank", **bad}, "test")


def test_residual_writers_are_not_output_layers_and_custom_forwards_are_kept():
    class Standardized(nn.Linear):  # more than W·x: two plain layers would drop the scaling
        def forward(self, x):
            return nn.functional.linear(x, self.weight / self.weight.norm(), self.bias)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 64)
            self.custom = Standardized(64, 64)
            self.inner = nn.Linear(64, 64)
            self.norm = nn.LayerNorm(64)

        def forward(self, x):
            h = self.embed(x)
            return self.norm(h + self.inner(torch.relu(self.custom(h))))  # a residual sum is the output

    torch.manual_seed(0)
    model = Block().eval()
    with torch.no_grad():
        model.inner.weight.copy_(_low_rank(64, 64, 4))
    x = torch.randn(3, 16)
    small, rep = LowRankFactorization(energy=0.9999).apply(model, StepContext(teacher=model, example=(x,)))
    assert [(e["module"], e["rank"]) for e in rep.stats["factorized"]] == [("inner", 4)]
    embed, custom = rep.stats["skipped"]
    assert embed["reason"] == "min(in, out) = 16 < min_features 32"
    assert custom["reason"] == "Standardized overrides forward(): two plain Linear layers might not compute the same"
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-4)
