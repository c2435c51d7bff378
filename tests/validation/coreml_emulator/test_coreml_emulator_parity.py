"""End-to-end parity: real coremltools exports of the sample models, run by the emulator, against
torch. (digits_cnn at every precision is covered by tests/exporters/test_coreml.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from coreml_helpers import PRECISIONS, run_every_precision
from coreml_helpers import export_coreml as export
from edgeport.validation.metrics import ErrorStats, top1_accuracy, top1_agreement
from edgeport.validation.runtimes import get_runtime
from edgeport.targets.tolerances import TOLERANCES

@pytest.fixture(scope="module")
def text_runs(text_transformer, tmp_path_factory):
    """text_transformer exported at every precision and run on its 512 held-out sequences."""
    ref, runs = run_every_precision(text_transformer, tmp_path_factory, "text")
    return text_transformer, ref, runs


@pytest.mark.parametrize("precision", PRECISIONS)
def test_text_transformer_meets_the_tolerance_table(text_runs, precision):
    src, ref, runs = text_runs
    art, sess, got = runs[precision]
    tol = TOLERANCES[precision]
    stats = ErrorStats.from_arrays("logits", ref, got)
    assert stats.cosine_min >= tol.cosine_min, stats
    assert stats.sqnr_db >= tol.sqnr_db_min, stats
    assert stats.max_abs_rel <= tol.max_abs_rel_max, stats
    assert top1_agreement(ref, got) >= tol.top1_agreement_min
    drop = top1_accuracy(ref, src.eval_data.labels) - top1_accuracy(got, src.eval_data.labels)
    assert drop <= tol.accuracy_drop_max
    if precision == "fp32":  # a FLOAT32 program: the emulator is float32 numpy, close to torch
        assert stats.max_abs_rel < 1e-5, stats
    assert sess.provenance == "emulated" and "not an iPhone figure" in sess.where()


def test_int64_token_ids_are_declared_int32_and_cast(text_runs):
    _, _, runs = text_runs
    art, sess, _ = runs["fp16"]
    assert sess.input_specs[0].dtype == "int32" and "int64_inputs" in art.facts
    ids = np.zeros((1, 32), np.int64)
    ids[0, 0] = 2 ** 40  # does not fit int32: refused, not wrapped around
    from edgeport.errors import RuntimeLoadError

    with pytest.raises(RuntimeLoadError, match="outside int32"):
        sess.run({"input_ids": ids})


def test_batched_predict_is_bit_identical_to_per_sample_runs(text_runs):
    src, _, runs = text_runs
    _, sess, got = runs["fp16"]
    assert sess.batching["mode"] == "batched"
    data = src.eval_data
    for i in (1, 77, 300):
        np.testing.assert_array_equal(got[i:i + 1], sess.run(data.sample(i))["logits"])


def test_fp16_program_differs_from_fp32_like_fp16_storage_does(text_runs):
    """fp16 emulation is really on: the FLOAT16 program's error is fp16-sized, not fp32-sized."""
    _, ref, runs = text_runs
    err16 = ErrorStats.from_arrays("l", ref, runs["fp16"][2]).max_abs_rel
    err32 = ErrorStats.from_arrays("l", ref, runs["fp32"][2]).max_abs_rel
    assert 1e-4 < err16 < 2e-2 and err32 < err16 / 50


def test_compressed_weights_decompress_like_coremltools(text_transformer, ct, tmp_path):
    """Every constexpr op the emulator implements, checked against coremltools' own decompression:
    the compressed program and coremltools' decompressed copy of it must give the same outputs."""
    import coremltools.optimize.coreml as cto

    from edgeport.exporters._coreml_convert import convert_module

    src = text_transformer
    data = src.eval_data.take(32)
    emu = get_runtime("coreml-emulator")
    ml = {t: convert_module(src.module, src.example_inputs, src.input_names, src.output_names, True, t)[0]
          for t in ("iOS16", "iOS18")}
    variants = {
        "affine_iOS16": cto.linear_quantize_weights(ml["iOS16"], cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(weight_threshold=0))),
        "lut_iOS16": cto.palettize_weights(ml["iOS16"], cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(nbits=2, weight_threshold=0))),
        "blockwise_int4_iOS18": cto.linear_quantize_weights(ml["iOS18"], cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(dtype="int4", granularity="per_block", block_size=16,
                                                      weight_threshold=0))),
        "grouped_lut_iOS18": cto.palettize_weights(ml["iOS18"], cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(nbits=3, granularity="per_grouped_channel", group_size=8,
                                                 weight_threshold=0))),
    }
    pruned18 = cto.prune_weights(ml["iOS18"], cto.OptimizationConfig(
        global_config=cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=0)))
    variants["sparse_iOS18"] = pruned18
    variants["sparse_lut_iOS18"] = cto.palettize_weights(pruned18, cto.OptimizationConfig(
        global_config=cto.OpPalettizerConfig(nbits=4, weight_threshold=0)), joint_compression=True)
    variants["sparse_int8_iOS18"] = cto.linear_quantize_weights(pruned18, cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(weight_threshold=0)), joint_compression=True)
    variants["sparse_iOS16"] = cto.prune_weights(ml["iOS16"], cto.OptimizationConfig(
        global_config=cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=0)))
    seen = set()
    for name, model in variants.items():
        packed, plain = tmp_path / f"{name}.mlpackage", tmp_path / f"{name}_plain.mlpackage"
        model.save(str(packed))
        cto.decompress_weights(model).save(str(plain))
        s_packed, s_plain = emu.load(packed), emu.load(plain)
        seen |= set(s_packed.interpreter.decompressed)
        assert s_packed.interpreter.decompressed, name
        assert not s_plain.interpreter.decompressed, name
        np.testing.assert_array_equal(s_packed.predict(data)["logits"], s_plain.predict(data)["logits"], err_msg=name)
    assert seen >= {"constexpr_affine_dequantize", "constexpr_lut_to_dense", "constexpr_sparse_to_dense",
                    "constexpr_blockwise_shift_scale", "constexpr_lut_to_sparse",
                    "constexpr_sparse_blockwise_shift_scale"}, seen


# ---- real pretrained models ----------------------------------------------------------------------
@pytest.mark.real
def test_minilm_fp16_cosine_on_real_sentences(minilm, tmp_path):
    src = minilm
    art = export(src, "fp16", tmp_path)
    sess = get_runtime("coreml-emulator").load(art.path)
    name = src.output_names[0]
    got = sess.predict(src.eval_data)[name]
    stats = ErrorStats.from_arrays(name, src.reference(src.eval_data)[name], got)
    assert stats.cosine_min >= 0.999, stats
    assert sess.batching["mode"] == "batched", sess.batching


@pytest.mark.real
def test_efficientnet_lite0_fp16_top1_and_cosine(effnet, tmp_path):
    src = effnet
    data = src.eval_data.take(8)
    art = export(src, "fp16", tmp_path)
    sess = get_runtime("coreml-emulator").load(art.path)
    got = sess.predict(data)[src.output_names[0]]
    ref = src.reference(data)[src.output_names[0]]
    stats = ErrorStats.from_arrays("logits", ref, got)
    assert stats.cosine_min >= 0.999 and top1_agreement(ref, got) == 1.0, stats
