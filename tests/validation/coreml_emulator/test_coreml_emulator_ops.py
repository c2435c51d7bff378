"""Op-level tests of the CoreML emulator: MIL programs built with coremltools' builder, saved as
real .mlpackage files, run by the emulator and compared with torch / numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeport.errors import RuntimeLoadError

F = torch.nn.functional
RNG = np.random.default_rng(0)


def only(outputs: dict[str, np.ndarray]) -> np.ndarray:
    assert len(outputs) == 1, list(outputs)
    return next(iter(outputs.values()))


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def t(a: np.ndarray):
    return torch.from_numpy(a)


# ---- convolution ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pad_type,pad,strides,dilations,groups,torch_pad", [
    ("valid", None, [1, 1], [1, 1], 1, 0),
    ("custom", [1, 2, 0, 1], [2, 1], [1, 1], 1, (0, 1, 1, 2)),   # MIL [top, bottom, left, right]
    ("custom", [2, 2, 2, 2], [1, 1], [2, 2], 1, (2, 2, 2, 2)),
    ("custom", [1, 1, 1, 1], [1, 1], [1, 1], 2, (1, 1, 1, 1)),   # grouped
    ("custom", [1, 1, 1, 1], [2, 2], [1, 1], 4, (1, 1, 1, 1)),   # depthwise
])
def test_conv2d_padding_strides_dilations_groups(run_mil, pad_type, pad, strides, dilations, groups, torch_pad):
    x, w, b = rand(2, 4, 9, 10), rand(4 if groups == 4 else 6, 4 // groups, 3, 3), None
    b = rand(w.shape[0])
    kw = dict(pad_type=pad_type, strides=strides, dilations=dilations, groups=groups)
    if pad is not None:
        kw["pad"] = pad
    out, ops = run_mil(lambda mb, v: mb.conv(x=v, weight=w, bias=b, **kw), {"x": x})
    ref = F.conv2d(F.pad(t(x), torch_pad) if torch_pad else t(x), t(w), t(b), stride=strides,
                   dilation=dilations, groups=groups).numpy()
    assert "conv" in ops
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad_type", ["same", "same_lower"])
def test_conv2d_same_padding(run_mil, pad_type):
    x, w = rand(1, 3, 7, 8), rand(5, 3, 4, 4)  # even kernel: before/after padding differ
    out, _ = run_mil(lambda mb, v: mb.conv(x=v, weight=w, pad_type=pad_type, strides=[2, 2]), {"x": x})
    # output ceil(7/2)=4, ceil(8/2)=4; total pads: rows (4-1)*2+4-7=3, cols (4-1)*2+4-8=2
    rows, cols = ((1, 2), (1, 1)) if pad_type == "same" else ((2, 1), (1, 1))
    ref = F.conv2d(F.pad(t(x), cols + rows), t(w), stride=2).numpy()
    assert only(out).shape == (1, 5, 4, 4)
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-5)


def test_conv1d(run_mil):
    x, w = rand(2, 3, 11), rand(4, 3, 3)
    out, _ = run_mil(lambda mb, v: mb.conv(x=v, weight=w, pad_type="custom", pad=[1, 1], strides=[2]), {"x": x})
    np.testing.assert_allclose(only(out), F.conv1d(t(x), t(w), padding=1, stride=2).numpy(), rtol=1e-5, atol=1e-5)


# ---- pooling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,ceil_mode,pad,exclude", [
    ("max", False, [0, 0, 0, 0], False), ("max", True, [0, 0, 0, 0], False),
    ("avg", False, [1, 1, 1, 1], True), ("avg", False, [1, 1, 1, 1], False),
])
def test_pooling(run_mil, kind, ceil_mode, pad, exclude):
    x = rand(2, 3, 7, 7)

    def build(mb, v):
        kw = dict(x=v, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=pad, ceil_mode=ceil_mode)
        return mb.max_pool(**kw) if kind == "max" else mb.avg_pool(exclude_padding_from_average=exclude, **kw)

    out, _ = run_mil(build, {"x": x})
    if kind == "max":
        ref = F.max_pool2d(t(x), 3, 2, padding=pad[0], ceil_mode=ceil_mode)
    else:
        ref = F.avg_pool2d(t(x), 3, 2, padding=pad[0], count_include_pad=not exclude)
    np.testing.assert_allclose(only(out), ref.numpy(), rtol=1e-5, atol=1e-6)


# ---- shapes and indexing -------------------------------------------------------------------------
def test_reshape_transpose_squeeze_expand(run_mil):
    x = rand(1, 6, 4)

    def build(mb, v):
        r = mb.reshape(x=v, shape=[1, 2, 3, 4])
        tr = mb.transpose(x=r, perm=[0, 3, 1, 2])
        sq = mb.squeeze(x=tr, axes=[0])
        return mb.expand_dims(x=sq, axes=[-1])

    out, ops = run_mil(build, {"x": x})
    ref = x.reshape(1, 2, 3, 4).transpose(0, 3, 1, 2)[0][..., None]
    assert {"reshape", "transpose", "squeeze", "expand_dims"} <= ops
    np.testing.assert_array_equal(only(out), ref)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(run_mil, axis):
    x = rand(5, 6, 7)
    idx = np.array([[0, 3], [4, 1]], dtype=np.int32)
    out, _ = run_mil(lambda mb, v, i: mb.gather(x=v, indices=i, axis=axis), {"x": x, "idx": idx})
    np.testing.assert_array_equal(only(out), np.take(x, idx, axis=axis))


def test_slice_by_index_masks_and_strides(run_mil):
    x = rand(4, 6, 8)

    def build(mb, v):
        return mb.slice_by_index(x=v, begin=[1, 0, 1], end=[3, 5, 8], stride=[1, 2, 3],
                                 begin_mask=[False, True, False], end_mask=[False, False, True],
                                 squeeze_mask=[False, False, False])

    out, _ = run_mil(build, {"x": x})
    np.testing.assert_array_equal(only(out), x[1:3, :5:2, 1::3])


def test_concat_split(run_mil):
    x, y = rand(2, 3), rand(2, 5)

    def build(mb, a, b):
        c = mb.concat(values=[a, b, a], axis=1)
        return mb.split(x=c, split_sizes=[4, 7], axis=1)

    out, _ = run_mil(build, {"x": x, "y": y})
    full = np.concatenate([x, y, x], axis=1)
    got = list(out.values())
    np.testing.assert_array_equal(got[0], full[:, :4])
    np.testing.assert_array_equal(got[1], full[:, 4:])


# ---- normalisation, softmax, matmul --------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_axis(run_mil, axis):
    x = rand(3, 4, 5) * 4
    out, _ = run_mil(lambda mb, v: mb.softmax(x=v, axis=axis), {"x": x})
    np.testing.assert_allclose(only(out), F.softmax(t(x), dim=axis).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axes", [[-1], [2, 3], [1, 2, 3]])
def test_layer_norm_axes(run_mil, axes):
    x = rand(2, 3, 4, 5) * 3 + 1
    shape = [x.shape[a] for a in axes]
    gamma, beta = rand(*shape), rand(*shape)
    out, _ = run_mil(lambda mb, v: mb.layer_norm(x=v, axes=axes, gamma=gamma, beta=beta, epsilon=1e-5), {"x": x})
    ref = F.layer_norm(t(x), shape, t(gamma), t(beta), eps=1e-5).numpy()
    np.testing.assert_allclose(only(out), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tx,ty", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transpose_flags_and_broadcast(run_mil, tx, ty):
    a = rand(2, 1, 4, 3) if tx else rand(2, 1, 3, 4)
    b = rand(5, 4) if ty else rand(4, 5)
    out, _ = run_mil(lambda mb, x, y: mb.matmul(x=x, y=y, transpose_x=tx, transpose_y=ty), {"a": a, "b": b})
    ref = np.matmul(np.swapaxes(a, -1, -2) if tx else a, b.T if ty else b)
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-5)


def test_linear_and_broadcasting_arithmetic(run_mil):
    x, w, bias, s = rand(2, 3, 8), rand(6, 8), rand(6), rand(3, 1)

    def build(mb, v):
        y = mb.linear(x=v, weight=w, bias=bias)
        return mb.real_div(x=mb.add(x=mb.mul(x=y, y=s), y=1.5), y=2.0)

    out, _ = run_mil(build, {"x": x})
    np.testing.assert_allclose(only(out), ((x @ w.T + bias) * s + 1.5) / 2.0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["EXACT", "TANH_APPROXIMATION"])
def test_gelu_modes(run_mil, mode):
    x = rand(4, 9) * 3
    out, _ = run_mil(lambda mb, v: mb.gelu(x=v, mode=mode), {"x": x})
    ref = F.gelu(t(x), approximate="none" if mode == "EXACT" else "tanh").numpy()
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-6)


def test_reductions_keep_dims(run_mil):
    x = rand(2, 3, 4)
    out, _ = run_mil(lambda mb, v: [mb.reduce_mean(x=v, axes=[1], keep_dims=True),
                                    mb.reduce_max(x=v, axes=[-1], keep_dims=False)], {"x": x})
    got = list(out.values())
    np.testing.assert_allclose(got[0], x.mean(1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(got[1], x.max(-1))


def test_select_comparison_cast(run_mil):
    x = rand(3, 4)

    def build(mb, v):
        cond = mb.greater_equal(x=v, y=0.0)
        return mb.cast(x=mb.select(cond=cond, a=v, b=mb.mul(x=v, y=-2.0)), dtype="int32")

    out, _ = run_mil(build, {"x": x * 5})
    ref = np.trunc(np.where(x * 5 >= 0, x * 5, x * 5 * -2)).astype(np.int32)
    np.testing.assert_array_equal(only(out), ref)


# ---- fp16 emulation ------------------------------------------------------------------------------
def test_fp16_program_rounds_every_op(run_mil):
    """A FLOAT16 program stores each intermediate in fp16: 1 + 2**-12 is lost after the add."""
    x = np.full((1, 4), 1.0, np.float32)
    out, ops = run_mil(lambda mb, v: mb.sub(x=mb.add(x=v, y=np.float32(2 ** -12)), y=1.0), {"x": x}, fp16=True)
    assert "cast" in ops  # the program casts the fp32 input to fp16
    np.testing.assert_array_equal(only(out), np.zeros((1, 4), np.float32))
    out32, _ = run_mil(lambda mb, v: mb.sub(x=mb.add(x=v, y=np.float32(2 ** -12)), y=1.0), {"x": x})
    np.testing.assert_array_equal(only(out32), np.full((1, 4), 2 ** -12, np.float32))


def test_round_fp16_matches_numpy_cast():
    from edgeport.validation.runtimes.coreml_emulator.interpreter import round_fp16

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32) * s for s in (1e-7, 1e-5, 1, 3e4, 1e5)])
    x = np.concatenate([x, np.array([np.nan, np.inf, -np.inf, 65504, 65519.99, 65520, -65520, 2 ** -25,
                                     3 * 2 ** -26, 0.0, -0.0, 6.1e-5], np.float32)])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).astype(np.float32)
    got = round_fp16(x)
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    assert same.all(), x[~same][:5]


@pytest.mark.parametrize("inplace", [False, True])
def test_round_fp16_over_fp16s_normal_range_ties_included(inplace):
    """Veltkamp splitting rounds like the hardware cast across the whole normal range: every
    tie (low 13 mantissa bits 0x1000) and its neighbours, and a stride through all the rest."""
    from edgeport.validation.runtimes.coreml_emulator.fp16 import round_fp16

    exponents = np.arange(113, 143, dtype=np.uint32)[:, None] << np.uint32(23)  # 2**-14 .. 2**15
    ties = (np.arange(1 << 10, dtype=np.uint32) << np.uint32(13)) | np.uint32(0x1000)
    mantissas = np.concatenate([ties, ties - 1, ties + 1, np.arange(0, 1 << 23, 97, dtype=np.uint32)])
    bits = (exponents | mantissas[None, :]).reshape(-1)
    x = bits.view(np.float32)
    x = np.concatenate([x, -x])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).astype(np.float32)
    got = round_fp16(x.copy(), inplace=inplace)
    np.testing.assert_array_equal(got, ref)


def test_round_fp16_with_known_bounds_matches_the_cast():
    """The clip bounds a folded activation hands the rounding (sign and overflow checks skipped)."""
    from edgeport.validation.runtimes.coreml_emulator.fp16 import round_fp16

    x = np.concatenate([RNG.standard_normal(50000).astype(np.float32) * s for s in (1e-6, 1e-3, 1, 10)])
    x = np.concatenate([x, np.array([np.nan, 0.0, -0.0, 2 ** -25, 6.0], np.float32)])
    for lo, hi in [(0.0, 6.0), (0.0, np.inf), (-1.0, 1.0)]:
        clipped = np.clip(x, np.float32(lo), np.float32(hi))
        ref = clipped.astype(np.float16).astype(np.float32)
        got = round_fp16(clipped.copy(), inplace=True, bounds=(lo, hi))
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


# ---- what the emulator does not do ---------------------------------------------------------------
def test_unimplemented_op_is_an_error_naming_it(ct, mil_dir):
    """Device random number generators cannot be reproduced: the emulator refuses them by name."""
    from coremltools.converters.mil import Builder as mb

    from edgeport.validation.inspect import inspect_artifact
    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime, supported_ops

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 4, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        shape = np.array([1, 2, 4, 4], np.int32)
        noise = mb.add(x=mb.random_uniform(shape=shape), y=mb.random_normal(shape=shape))
        return mb.add(x=mb.upsample_bilinear(x=x, scale_factor_height=1.0, scale_factor_width=1.0), y=noise)

    path = mil_dir / "unsupported.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    with pytest.raises(RuntimeLoadError, match=r"^coreml-emulator lacks ops: random_normal, random_uniform \("):
        CoreMLEmulatorRuntime().load(path)
    report = inspect_artifact("coreml", path)
    assert report.unsupported == ["random_normal", "random_uniform"] and report.blocking
    ops = supported_ops()
    assert ops == sorted(ops) and {"lstm", "while_loop", "conv_transpose", "upsample_bilinear"} <= set(ops)
    assert "random_uniform" not in ops


def test_ops_inside_loop_bodies_count_as_missing(ct, mil_dir):
    """missing_ops looks inside nested blocks: an unknown op in a while_loop body is named."""
    from coremltools.converters.mil import Builder as mb

    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        def cond(i, v):
            return mb.less(x=i, y=np.int32(3))

        def body(i, v):
            noise = mb.random_bernoulli(shape=np.array([2, 3], np.int32), prob=0.5)
            return mb.add(x=i, y=np.int32(1)), mb.add(x=v, y=noise)

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))[1]

    path = mil_dir / "loop_unsupported.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    with pytest.raises(RuntimeLoadError, match="lacks ops: random_bernoulli"):
        CoreMLEmulatorRuntime().load(path)


# ---- ops the real models use that need newer opsets / rarer paths ------------------------------
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_scaled_dot_product_attention_ios18(run_mil, mask_kind):
    q, k, v = rand(2, 3, 5, 8), rand(2, 3, 7, 8), rand(2, 3, 7, 4)
    bool_mask = RNG.random((5, 7)) > 0.3
    bool_mask[:, 0] = True  # no fully masked row
    float_mask = rand(5, 7)

    def build(mb, a):
        kw = {}
        if mask_kind == "bool":
            kw["attn_mask"] = bool_mask
        elif mask_kind == "float":
            kw["attn_mask"] = float_mask
        return mb.scaled_dot_product_attention(query=a, key=k, value=v, **kw)

    out, ops = run_mil(build, {"q": q}, target="iOS18")
    mask = {"none": None, "bool": t(bool_mask), "float": t(float_mask)}[mask_kind]
    ref = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=mask).numpy()
    assert "scaled_dot_product_attention" in ops
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-6)


def test_gather_nd_and_l2_norm(run_mil):
    x = rand(2, 3, 4, 5)
    idx = np.array([[[1, 2], [0, 0]], [[1, 0], [0, 2]]], dtype=np.int32)

    def build(mb, a):
        return [mb.gather_nd(x=a, indices=idx), mb.l2_norm(x=a, epsilon=1e-6)]

    out, _ = run_mil(build, {"x": x})
    got = list(out.values())
    np.testing.assert_array_equal(got[0], x[idx[..., 0], idx[..., 1]])
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(got[1], x / norm, rtol=1e-5)
