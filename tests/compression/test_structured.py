"""Channel / neuron pruning with torch-pruning: exact kept counts and sizes, outputs keep their
shapes, what cannot be pruned is left alone and named, and the pruned model exports and runs."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgeport.compression import parse_step
from edgeport.compression.base import StepContext
from edgeport.compression.structured import ChannelPruning
from edgeport.errors import ConfigError, ConversionError


def _example(source):
    return tuple(torch.from_numpy(x) for x in source.example_inputs)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _left(report, module):
    return next(e for e in report.stats["left_alone"] if e["module"] == module)


class TwoInTwoOut(nn.Module):
    """An image and a feature vector in; class logits and a one-value score out."""

    def __init__(self):
        super().__init__()
        self.img = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.meta = nn.Sequential(nn.Linear(10, 64), nn.ReLU())
        self.trunk = nn.Sequential(nn.Linear(48 + 64, 128), nn.ReLU())
        self.cls = nn.Linear(128, 5)
        self.reg = nn.Linear(128, 1)

    def forward(self, image, extra):
        h = self.trunk(torch.cat([self.img(image), self.meta(extra)], dim=1))
        return {"logits": self.cls(h), "score": self.reg(h)}


class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 64)
        self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
        self.head = nn.Linear(64, 3)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        h = h + self.ff(h)
        return self.head(h.mean(1))


class WithGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(8, 32, 3, padding=1), nn.ReLU())
        self.gru = nn.GRU(32, 48, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(48, 96), nn.ReLU(), nn.Linear(96, 2))

    def forward(self, x):
        out, _ = self.gru(self.conv(x).transpose(1, 2))
        return self.mlp(out[:, -1])


class Depthwise(nn.Module):
    """MobileNet-style: a depthwise conv (groups = channels) and a grouped conv (groups = 4)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6())
        self.grouped = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(64),
                                     nn.ReLU6())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.grouped(self.pw(self.dw(self.stem(x)))).mean((2, 3)))


@pytest.mark.parametrize("multiple", [16, 8, 1])
def test_digits_half_the_channels(digits, multiple):
    before = _state(digits.module)
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=multiple).apply(
        digits.module, StepContext(teacher=digits.module, calibration=digits.calibration_data,
                                   example=_example(digits)))
    s = rep.stats
    # every hidden width halves (32, 64, 96, 128 are multiples of 16); the classifier keeps its 10
    assert s["channels"] == {"0": [32, 16], "3": [64, 32], "7": [96, 48], "12": [128, 64]}
    assert all(after % multiple == 0 for _, after in s["channels"].values())
    assert s["channel_multiple"] == multiple and s["channel_multiple_from"] == "setting"
    assert [e["module"] for e in s["left_alone"]] == ["14"] and "model output" in s["left_alone"][0]["reason"]
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 32), (32, 48)]
    assert (pruned[12].in_features, pruned[12].out_features, pruned[14].out_features) == (192, 64, 10)
    # 144 + 32 + 4608 + 64 + 13824 + 96 + 12352 + 650 parameters remain
    assert (s["params_before"], s["params_after"]) == (124970, 31770)
    assert s["macs_after"] < 0.3 * s["macs_before"] and s["layers_pruned"] == 5
    with torch.no_grad():
        assert pruned(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    # the input module is untouched (weights, shapes and eval mode)
    after = digits.module.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert digits.module[0].out_channels == 32 and not digits.module.training


def test_batchnorm_is_recalibrated_on_the_calibration_inputs(digits):
    x = torch.from_numpy(digits.eval_data.inputs["x"])
    y = torch.from_numpy(digits.eval_data.labels)
    context = StepContext(teacher=digits.module, calibration=digits.calibration_data)  # example: 1st sample

    def accuracy(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    fresh, rep = ChannelPruning(ratio=0.5, channel_multiple=8).apply(digits.module, context)
    stale, stale_rep = ChannelPruning(ratio=0.5, channel_multiple=8, recalibrate_batchnorm=False).apply(
        digits.module, context)
    assert rep.stats["batchnorm_recalibrated_layers"] == 3 and stale_rep.stats["batchnorm_recalibrated_layers"] == 0
    # the first BatchNorm's running mean is the mean of its input over the 256 calibration images
    calib = torch.from_numpy(digits.calibration_data.inputs["x"])
    with torch.no_grad():
        want = fresh[0](calib).mean(dim=(0, 2, 3))
    assert torch.allclose(fresh[1].running_mean, want, atol=1e-4)
    # measured: 0.94 with fresh statistics, 0.59 with the stale ones (0.997 unpruned)
    assert accuracy(fresh) >= 0.9 and accuracy(fresh) > accuracy(stale) + 0.2


def test_text_transformer_mlp_and_residual_widths(text_transformer):
    module, context = text_transformer.module, StepContext(teacher=text_transformer.module,
                                                           example=_example(text_transformer))
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=8).apply(module, context)
    s = rep.stats
    assert s["channels"] == {"layers.1.ff.2": [64, 32], "layers.1.ff.0": [128, 64], "layers.0.ff.0": [128, 64]}
    # the residual width (embedding dim, every norm, q/k/v inputs) shrank; the vocabulary did not
    assert (pruned.embed.num_embeddings, pruned.embed.embedding_dim, pruned.pos.shape[-1]) == (1000, 32, 32)
    assert pruned.layers[0].attn.q.out_features == 64 and pruned.head.out_features == 4
    for layer in ("layers.0.attn.v", "layers.1.attn.v"):
        entry = _left(rep, layer)
        assert "matrix product" in entry["reason"] and entry["coupled"] == [layer[:-1] + "k", layer[:-1] + "q"]
    with torch.no_grad():
        assert pruned(*context.example).shape == (1, 4)

    mlp, mlp_rep = ChannelPruning(ratio=0.5, channel_multiple=8, layers=("*.ff.0",)).apply(module, context)
    assert mlp_rep.stats["channels"] == {"layers.1.ff.0": [128, 64], "layers.0.ff.0": [128, 64]}
    assert mlp_rep.stats["not_selected"] == ["layers.1.ff.2"]
    assert mlp.embed.embedding_dim == 64 and mlp.layers[1].ff[2].in_features == 64
    assert mlp_rep.stats["params_after"] == 133380 - 2 * (64 * 64 + 64 + 64 * 64)


def test_two_inputs_two_outputs_keep_their_outputs():
    torch.manual_seed(0)
    model = TwoInTwoOut().eval()
    example = (torch.randn(4, 3, 8, 8), torch.randn(4, 10))
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=8).apply(model, StepContext(teacher=model, example=example))
    assert rep.stats["channels"] == {"trunk.0": [128, 64], "meta.0": [64, 32], "img.3": [48, 24], "img.0": [32, 16]}
    assert {e["module"] for e in rep.stats["left_alone"]} == {"cls", "reg"}
    with torch.no_grad():
        out = pruned(*example)
    assert (out["logits"].shape, out["score"].shape) == ((4, 5), (4, 1))
    assert pruned.trunk[0].in_features == 24 + 32  # the concat's two halves each shrank


def test_dead_neurons_go_first_and_the_outputs_do_not_move():
    """A quarter of the trunk's neurons are dead (zero weights in and out): pruning a quarter of
    that layer removes exactly them, and both outputs stay the same."""
    torch.manual_seed(1)
    model = TwoInTwoOut().eval()
    dead = torch.arange(0, 128, 4)
    with torch.no_grad():
        model.trunk[0].weight[dead] = 0
        model.trunk[0].bias[dead] = 0
        model.cls.weight[:, dead] = 0
        model.reg.weight[:, dead] = 0
    example = (torch.randn(16, 3, 8, 8), torch.randn(16, 10))
    pruned, rep = ChannelPruning(ratio=0.25, layers=("trunk.*",)).apply(model, StepContext(teacher=model, example=example))
    assert rep.stats["channels"] == {"trunk.0": [128, 96]}
    assert pruned.img[0].out_channels == 32 and pruned.meta[0].out_features == 64
    with torch.no_grad():
        want, got = model(*example), pruned(*example)
    for key in ("logits", "score"):
        assert torch.allclose(want[key], got[key], atol=1e-6)


def test_multihead_attention_is_left_alone_and_reported():
    torch.manual_seed(0)
    model = WithAttention().eval()
    example = (torch.randn(2, 6, 16),)
    pruned, rep = ChannelPruning(ratio=0.5).apply(model, StepContext(teacher=model, example=example))
    assert "cannot remove its heads" in _left(rep, "attn")["reason"]
    residual = _left(rep, "ff.2")
    assert residual["reason"] == "coupled to 'attn', which is left alone" and residual["coupled"] == ["embed", "attn"]
    assert rep.stats["channels"] == {"ff.0": [256, 128]}  # the MLP width is still pruned
    assert (pruned.attn.embed_dim, pruned.attn.num_heads, pruned.embed.out_features) == (64, 4, 64)
    with torch.no_grad():
        assert pruned(*example).shape == (2, 3)


def test_recurrent_layer_is_left_alone_with_what_feeds_it():
    torch.manual_seed(0)
    model = WithGRU().eval()
    example = (torch.randn(2, 8, 12),)
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=8).apply(model, StepContext(teacher=model, example=example))
    assert "recurrent layer (nn.GRU)" in _left(rep, "gru")["reason"]
    assert _left(rep, "conv.0")["reason"] == "coupled to 'gru', which is left alone"
    assert rep.stats["channels"] == {"mlp.0": [96, 48]}
    assert (pruned.gru.input_size, pruned.gru.hidden_size, pruned.conv[0].out_channels) == (32, 48, 32)
    with torch.no_grad():
        assert pruned(*example).shape == (2, 2)


def test_depthwise_and_grouped_convolutions():
    torch.manual_seed(0)
    model = Depthwise().eval()
    example = (torch.randn(2, 3, 8, 8),)
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=8).apply(model, StepContext(teacher=model, example=example))
    dw, grouped = pruned.dw[0], pruned.grouped[0]
    # the depthwise conv stays depthwise and shrinks with the stem it is tied to
    assert (pruned.stem[0].out_channels, dw.in_channels, dw.out_channels, dw.groups) == (16, 16, 16, 16)
    # the grouped conv keeps its 4 groups, each halved
    assert (grouped.in_channels, grouped.out_channels, grouped.groups) == (32, 32, 4)
    assert all(a % 8 == 0 for _, a in rep.stats["channels"].values())
    assert rep.stats["params_after"] < 0.35 * rep.stats["params_before"]
    with torch.no_grad():
        assert pruned(*example).shape == (2, 10)


def test_kept_counts_never_fall_below_one_multiple():
    model = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    pruned, rep = ChannelPruning(ratio=0.5, channel_multiple=16).apply(
        model, StepContext(teacher=model, example=(torch.randn(2, 8),)))
    # 24 at half is 12, which rounds down to 0: one multiple (16) is kept instead
    assert rep.stats["channels"] == {"0": [24, 16]}
    assert _left(rep, "2")["reason"] == "16 channels: no fewer can be kept that are a multiple of 16"
    assert [m.out_features for m in pruned if isinstance(m, nn.Linear)] == [16, 16, 3]


def test_target_multiple_and_settings_are_checked(digits):
    context = StepContext(teacher=digits.module, example=_example(digits), channel_multiple=16)
    _, rep = ChannelPruning(ratio=0.5).apply(digits.module, context)
    assert rep.stats["channel_multiple"] == 16 and rep.stats["channel_multiple_from"] == "target"
    step = parse_step({"kind": "channels", "ratio": 0.3, "importance": "l1", "scope": "global"}, "test")
    assert isinstance(step, ChannelPruning) and step.importance == "l1"
    for bad in ({"ratio": 0.96}, {"importance": "l3"}, {"scope": "net"}, {"channel_multiple": -1}, {"ratios": 0.5}):
        with pytest.raises(ConfigError):
            parse_step({"kind": "channels", **bad}, "test")
    with pytest.raises(ConfigError, match="example inputs"):
        ChannelPruning(ratio=0.5).apply(digits.module, StepContext(teacher=digits.module))


def test_a_model_torch_pruning_cannot_trace_is_a_named_error(digits, monkeypatch):
    import torch_pruning as tp

    def refuse(self, model, **kwargs):
        raise RuntimeError("unsupported operator in the traced graph")

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", refuse)
    with pytest.raises(ConversionError) as info:
        ChannelPruning(ratio=0.5).apply(digits.module, StepContext(teacher=digits.module, example=_example(digits)))
    assert str(info.value) == ("channel pruning (torch-pruning) failed: cannot trace Sequential: "
                               "unsupported operator in the traced graph")


def test_channel_pruned_digits_export_to_onnx(digits, tmp_path):
    from edgeport.pipeline import export

    profile = tmp_path / "onnx-channels.toml"
    profile.write_text('name = "onnx-channels"\nformat = "onnx"\nruntime = "onnxruntime"\n'
                       'precisions = ["fp32", "int8"]\ndefault_precision = "fp32"\n\n'
                       '[[compression]]\nkind = "channels"\nratio = 0.5\nchannel_multiple = 8\n\n'
                       '[latency]\nthreads = 1\nwarmup = 3\nruns = 20\n')
    (dense,) = export(copy.deepcopy(digits), ["local-onnx"], precision="fp32", out_dir=tmp_path / "dense")
    (result,) = export(digits, [str(profile)], precision="fp32", out_dir=tmp_path / "pruned")
    assert result.error is None
    r = result.report
    (step,) = r.compression.steps
    assert step["kind"] == "channels" and step["params_after"] == 31770
    assert r.parity.reference == "compressed source model"
    assert next(c for c in r.checks if c.name == "parity").passed  # the conversion of the pruned model is exact
    # a quarter of the parameters: the ONNX file is about a quarter of the dense one's
    assert r.size.artifact_bytes < 0.3 * dense.report.size.artifact_bytes
