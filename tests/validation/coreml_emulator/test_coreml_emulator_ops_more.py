"""Op-level tests for MIL ops (and modes) torch conversions rarely emit: programs built with
coremltools' builder, saved as real .mlpackage files, run by the emulator and compared with
torch or with the values coremltools' op definitions document."""
from __future__ import annotations

import numpy as np
import pytest
import torch

F = torch.nn.functional
RNG = np.random.default_rng(7)


def only(outputs: dict[str, np.ndarray]) -> np.ndarray:
    assert len(outputs) == 1, list(outputs)
    return next(iter(outputs.values()))


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ---- resampling: the grids coremltools' resize_bilinear documentation gives for Xin = 2 --------
RAMP = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2)
DOC_GRIDS = {  # (sampling mode, Xout) -> grid points on [0, 1]
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("DEFAULT", 6): [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0],
    ("OFFSET_CORNERS", 6): [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12],
}


@pytest.mark.parametrize("mode,size", sorted(DOC_GRIDS))
def test_resize_bilinear_sampling_modes_follow_the_documented_grids(run_mil, mode, size):
    out, ops = run_mil(lambda mb, v: mb.resize_bilinear(x=v, target_size_height=1, target_size_width=size,
                                                        sampling_mode=mode), {"x": RAMP})
    assert "resize_bilinear" in ops
    np.testing.assert_allclose(only(out).reshape(-1), DOC_GRIDS[(mode, size)], atol=1e-6)


@pytest.mark.parametrize("align,half", [(False, False), (False, True), (True, False)])
def test_upsample_bilinear_half_pixel_centers_ios16(run_mil, align, half):
    x = rand(1, 2, 3, 4)
    out, _ = run_mil(lambda mb, v: mb.upsample_bilinear(x=v, scale_factor_height=2.0, scale_factor_width=2.0,
                                                        align_corners=align, half_pixel_centers=half), {"x": x})
    if half or align:  # torch's two modes
        ref = F.interpolate(torch.from_numpy(x), scale_factor=2, mode="bilinear", align_corners=align).numpy()
    else:  # grid i * in / out, TF's legacy resize: sample every other point, the last repeated
        ref = np.empty((1, 2, 6, 8), np.float32)
        for i in range(6):
            for j in range(8):
                gi, gj = min(i / 2, 2), min(j / 2, 3)
                i0, j0 = int(gi), int(gj)
                i1, j1 = min(i0 + 1, 2), min(j0 + 1, 3)
                wi, wj = gi - i0, gj - j0
                ref[..., i, j] = ((1 - wi) * ((1 - wj) * x[..., i0, j0] + wj * x[..., i0, j1])
                                  + wi * ((1 - wj) * x[..., i1, j0] + wj * x[..., i1, j1]))
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-6)


def test_resize_ios17_linear_and_nearest(run_mil):
    x = rand(1, 3, 4, 5)

    def build(mb, v):
        shape = np.array([7, 9], np.int32)
        return [mb.resize(x=v, shape=shape, resized_dims=np.uint32(2), interpolation_mode="LINEAR",
                          sampling_mode="UNALIGN_CORNERS"),
                mb.resize(x=v, shape=shape, resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR")]

    out, ops = run_mil(build, {"x": x}, target="iOS17")
    linear, nearest = out.values()
    t = torch.from_numpy(x)
    np.testing.assert_allclose(linear, F.interpolate(t, size=(7, 9), mode="bilinear", align_corners=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    rows, cols = (np.arange(7) * 4) // 7, (np.arange(9) * 5) // 9  # floor(dst * in / out)
    np.testing.assert_array_equal(nearest, x[:, :, rows][:, :, :, cols])


def test_resize_nearest_neighbor_and_crop(run_mil):
    x = rand(2, 3, 5, 4)

    def build(mb, v):
        up = mb.resize_nearest_neighbor(x=v, target_size_height=8, target_size_width=10)
        return mb.crop(x=up, crop_height=[1, 2], crop_width=[3, 0])

    out, _ = run_mil(build, {"x": x})
    rows, cols = (np.arange(8) * 5) // 8, (np.arange(10) * 4) // 10
    np.testing.assert_array_equal(only(out), x[:, :, rows][:, :, :, cols][:, :, 1:6, 3:])


# ---- scatter, sort, one-hot ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["update", "add", "mul", "max", "min", "sub"])
def test_scatter_modes(run_mil, mode):
    data, updates = rand(5, 3), rand(2, 3)
    idx = np.array([3, 1], np.int32)
    out, _ = run_mil(lambda mb, d: mb.scatter(data=d, indices=idx, updates=updates, axis=0, mode=mode), {"d": data})
    ref = data.copy()
    op = {"update": lambda a, b: b, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
          "sub": np.subtract}[mode]
    ref[idx] = op(ref[idx], updates)
    np.testing.assert_allclose(only(out), ref, rtol=1e-6)


def test_scatter_along_axis_and_scatter_nd(run_mil):
    data = rand(3, 4)
    idx = np.array([[0, 2], [1, 3], [3, 0]], np.int32)
    upd = rand(3, 2)
    nd_idx = np.array([[0, 1], [2, 3]], np.int32)
    nd_upd = rand(2)

    def build(mb, d):
        return [mb.scatter_along_axis(data=d, indices=idx, updates=upd, axis=1, mode="add"),
                mb.scatter_nd(data=d, indices=nd_idx, updates=nd_upd, mode="update")]

    out, _ = run_mil(build, {"d": data})
    along, nd = out.values()
    ref = data.copy()
    for i in range(3):
        for j in range(2):
            ref[i, idx[i, j]] += upd[i, j]
    np.testing.assert_allclose(along, ref, rtol=1e-6)
    ref_nd = data.copy()
    ref_nd[0, 1], ref_nd[2, 3] = nd_upd
    np.testing.assert_array_equal(nd, ref_nd)


@pytest.mark.parametrize("ascending", [False, True])
def test_topk_and_argsort(run_mil, ascending):
    x = rand(3, 7)

    def build(mb, v):
        values, indices = mb.topk(x=v, k=3, axis=-1, ascending=ascending)
        return [values, indices, mb.argsort(x=v, axis=0, ascending=ascending)]

    out, _ = run_mil(build, {"x": x})
    values, indices, order = out.values()
    t = torch.from_numpy(x).topk(3, dim=-1, largest=not ascending)
    np.testing.assert_array_equal(values, t.values.numpy())
    np.testing.assert_array_equal(indices, t.indices.numpy())
    np.testing.assert_array_equal(order, np.argsort(x if ascending else -x, axis=0, kind="stable"))


def test_one_hot_reverse_and_reverse_sequence(run_mil):
    x = rand(4, 5, 2)
    ids = np.array([[1, 0, 3]], np.int32)
    lengths = np.array([5, 2, 0, 3], np.int32)

    def build(mb, v):
        return [mb.one_hot(indices=ids, one_hot_vector_size=4, axis=-1, on_value=2.0, off_value=-1.0),
                mb.reverse(x=v, axes=[1]),
                mb.reverse_sequence(x=v, lengths=lengths, seq_axis=1, batch_axis=0)]

    out, _ = run_mil(build, {"x": x})
    hot, rev, revseq = out.values()
    np.testing.assert_array_equal(hot, np.where(np.eye(4)[ids] > 0, 2.0, -1.0))
    np.testing.assert_array_equal(rev, x[:, ::-1])
    ref = x.copy()
    for b, n in enumerate(lengths):
        ref[b, :n] = x[b, :n][::-1]
    np.testing.assert_array_equal(revseq, ref)


def test_parametric_activations(run_mil):
    x = rand(2, 3, 4, 4) * 3
    alpha, beta = np.array([0.5, 1.0, 2.0], np.float32), np.array([1.0, 0.5, 3.0], np.float32)

    def build(mb, v):
        return [mb.clamped_relu(x=v, alpha=0.1, beta=2.0), mb.scaled_tanh(x=v, alpha=1.5, beta=0.5),
                mb.softplus_parametric(x=v, alpha=alpha, beta=beta), mb.thresholded_relu(x=v, alpha=0.7)]

    out, _ = run_mil(build, {"x": x})
    clamped, scaled, softplus, thresholded = out.values()
    np.testing.assert_allclose(clamped, np.minimum(np.where(x >= 0, x, 0.1 * x), 2.0), rtol=1e-6)
    np.testing.assert_allclose(scaled, 1.5 * np.tanh(0.5 * x), rtol=1e-6)
    a4, b4 = alpha.reshape(1, 3, 1, 1), beta.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(softplus, a4 * np.log1p(np.exp(b4 * x)), rtol=1e-5)
    np.testing.assert_array_equal(thresholded, np.where(x >= 0.7, x, 0))


# ---- control flow ----------------------------------------------------------------------------
def test_while_loop_and_cond(run_mil):
    x = rand(2, 3)

    def build(mb, v):
        def cond(i, acc):
            return mb.less(x=i, y=np.int32(4))

        def body(i, acc):
            return mb.add(x=i, y=np.int32(1)), mb.add(x=mb.mul(x=acc, y=0.5), y=v)

        _, looped = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), v))
        positive = mb.greater(x=mb.reduce_sum(x=v), y=0.0)
        branch = mb.cond(pred=positive, _true_fn=lambda: mb.mul(x=v, y=2.0), _false_fn=lambda: mb.sub(x=v, y=1.0))
        return [looped, branch]

    out, ops = run_mil(build, {"x": x})
    looped, branch = out.values()
    assert {"while_loop", "cond"} <= ops
    acc = x.copy()
    for _ in range(4):
        acc = acc * 0.5 + x
    np.testing.assert_allclose(looped, acc, rtol=1e-6)
    np.testing.assert_allclose(branch, x * 2 if x.sum() > 0 else x - 1, rtol=1e-6)


# ---- recurrent layers as single MIL ops --------------------------------------------------------
def test_gru_ios18_reset_after_matches_torch(run_mil):
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 3)
    sd = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    x, h0 = rand(5, 2, 4), rand(2, 3)

    def reorder(w):  # torch [r, z, n] -> MIL [r, o(n), z]
        r, z, n = np.split(w, 3)
        return np.concatenate([r, n, z])

    def build(mb, v, h):
        return mb.gru(x=v, initial_h=h, weight_ih=reorder(sd["weight_ih_l0"]), weight_hh=reorder(sd["weight_hh_l0"]),
                      input_bias=reorder(sd["bias_ih_l0"]), bias=reorder(sd["bias_hh_l0"]), reset_after=True,
                      output_sequence=True)

    out, ops = run_mil(build, {"x": x, "h": h0}, target="iOS18")
    seq, last = out.values()
    ref_seq, ref_h = gru(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert "gru" in ops
    np.testing.assert_allclose(seq, ref_seq.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last, ref_h[0].detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_single_direction_lstm_op_matches_torch(run_mil, direction):
    """``reverse`` reads the sequence backwards and emits outputs in the order it produced them
    (as coremltools' own tests define it): torch run on the flipped sequence."""
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(4, 3)
    sd = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    x, h0, c0 = rand(6, 2, 4), rand(2, 3), rand(2, 3)

    def ifzo_to_ifoz(w):
        i, f, z, o = np.split(w, 4)
        return np.concatenate([i, f, o, z])

    def build(mb, v, h):
        return mb.lstm(x=v, initial_h=h, initial_c=c0, weight_ih=ifzo_to_ifoz(sd["weight_ih_l0"]),
                       weight_hh=ifzo_to_ifoz(sd["weight_hh_l0"]),
                       bias=ifzo_to_ifoz(sd["bias_ih_l0"] + sd["bias_hh_l0"]), direction=direction,
                       output_sequence=True)

    out, _ = run_mil(build, {"x": x, "h": h0})
    seq, h, c = out.values()
    feed = torch.from_numpy(x if direction == "forward" else x[::-1].copy())
    ref, (ref_h, ref_c) = lstm(feed, (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
    np.testing.assert_allclose(seq, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, ref_h[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, ref_c[0].detach().numpy(), rtol=1e-5, atol=1e-6)


# ---- conv_transpose padding forms --------------------------------------------------------------
@pytest.mark.parametrize("pad_type", ["same", "custom"])
def test_conv_transpose_pad_types(run_mil, pad_type):
    x, w, b = rand(1, 4, 5, 6), rand(4, 3, 3, 3), rand(3)
    kw = dict(pad_type=pad_type, strides=[2, 2])
    if pad_type == "custom":
        kw["pad"] = [1, 1, 1, 1]
    out, _ = run_mil(lambda mb, v: mb.conv_transpose(x=v, weight=w, bias=b, **kw), {"x": x})
    full = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2).numpy()
    if pad_type == "same":  # output in * stride = 10 x 12 of the full 11 x 13: one cut, at the end
        ref = full[..., :10, :12]
    else:
        ref = full[..., 1:-1, 1:-1]
    np.testing.assert_allclose(only(out), ref, rtol=1e-5, atol=1e-5)
