"""Layer zoo: small torch models converted by the real coremltools (edgeport's convert_module,
fp32 and fp16 programs, iOS16 and iOS17), run by the emulator, compared with torch.

fp32 programs must match torch to float32 rounding (max abs error under 1e-4 of the output's
range); fp16 programs round every op, so they are held to cosine > 0.999 per sample.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from edgeport.errors import ConversionError
from edgeport.validation.metrics import ErrorStats
from zoo import CONVERSION_FAILS, CONVERTER_DEVIATIONS, ZOO

#: layers whose MIL ops are control flow, recurrent or resampling: every precision x target
FULL_MATRIX = ("lstm", "gru", "rnn", "conv_transpose", "upsample", "pixel", "embedding")
VARIANTS = [("fp32", "iOS16"), ("fp16", "iOS17")]
MORE = [("fp32", "iOS17"), ("fp16", "iOS16")]
CASES = [(name, p, t) for name in ZOO for p, t in
         (VARIANTS + MORE if name.startswith(FULL_MATRIX) else VARIANTS)]
_ids = itertools.count()


def _convert(module, inputs, precision: str, target: str, tmp_path):
    from edgeport.exporters._coreml_convert import convert_module

    with torch.no_grad():
        ref = module(*[torch.from_numpy(x) for x in inputs])
    refs = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    names = [f"out{i}" for i in range(len(refs))]
    ml, _ = convert_module(module, inputs, [f"in{i}" for i in range(len(inputs))], names,
                           precision == "fp16", target)
    path = tmp_path / f"m{next(_ids)}.mlpackage"
    ml.save(str(path))
    return path, dict(zip(names, refs))


@pytest.mark.parametrize("name,precision,target", CASES, ids=[f"{n}-{p}-{t}" for n, p, t in CASES])
def test_zoo_layer_matches_torch(name, precision, target, tmp_path):
    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    module, inputs = ZOO[name]()
    path, refs = _convert(module, inputs, precision, target, tmp_path)
    sess = CoreMLEmulatorRuntime().load(path)
    feed = {spec.name: x for spec, x in zip(sess.input_specs, inputs)}
    got = sess.run(feed)
    assert set(got) == set(refs)
    if name in CONVERTER_DEVIATIONS:
        program_refs = CONVERTER_DEVIATIONS[name][1](*inputs)
        for key, ref in program_refs.items():  # the deviation is real: torch differs from the program
            assert ErrorStats.from_arrays(key, refs[key], ref).max_abs_rel > 1e-4
        refs = {**refs, **program_refs}
    for key, ref in refs.items():
        out = got[key]
        assert out.shape == ref.shape, (key, out.shape, ref.shape)
        if ref.dtype.kind in "iub":  # argmax and friends: exact in fp32, nearly always in fp16
            agree = float(np.mean(out == ref))
            assert agree == 1.0 if precision == "fp32" else agree >= 0.9, (key, agree)
            continue
        stats = ErrorStats.from_arrays(key, ref, out)
        if precision == "fp32":
            assert stats.max_abs_rel < 1e-4, stats
        else:
            assert stats.cosine_min > 0.999, stats


@pytest.mark.parametrize("name", sorted(CONVERSION_FAILS))
def test_layers_coremltools_cannot_convert_still_fail(name, tmp_path):
    """Known coremltools 9 gaps, kept out of the zoo. When one starts converting, move it in."""
    make, message = CONVERSION_FAILS[name]
    module, inputs = make()
    with pytest.raises(ConversionError, match=message):
        _convert(module, inputs, "fp32", "iOS16", tmp_path)


def test_batched_predict_of_an_lstm_program_equals_per_sample_runs(tmp_path):
    """The batch-1 LSTM program run on many samples at once (the leading 1 read as the batch;
    its constant zero initial state stands for every sample's)."""
    from edgeport.data import Dataset
    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    class SequenceOnly(torch.nn.Module):  # the final states are [layers, batch, H]: batch not first
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.rnn = torch.nn.LSTM(8, 6, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    module = SequenceOnly().eval()
    x = np.random.default_rng(3).standard_normal((6, 1, 5, 8)).astype(np.float32)
    path, _ = _convert(module, (x[0],), "fp16", "iOS17", tmp_path)
    sess = CoreMLEmulatorRuntime().load(path)
    name = sess.input_specs[0].name
    got = sess.predict(Dataset({name: x[:, 0]}))
    assert sess.batching["mode"].startswith("batched"), sess.batching
    for i in range(len(x)):
        single = sess.run({name: x[i]})
        for key in sess.output_names:
            np.testing.assert_array_equal(got[key][i:i + 1], single[key])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_folding_changes_no_bit(precision, tmp_path):
    """Clip and pad folded into the convolution, inputs overwritten in place, values freed: the
    same bits as running every op on its own (the plan only changes memory traffic)."""
    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime
    from edgeport.validation.runtimes.coreml_emulator.plan import StepPlan

    module, inputs = ZOO["mbconv"]()
    path, _ = _convert(module, inputs, precision, "iOS17", tmp_path)
    sess = CoreMLEmulatorRuntime().load(path)
    plans = sess.interpreter.plans
    assert any(p.pad for p in plans) and any(p.activation for p in plans) and any(p.owned for p in plans)
    feed = {sess.input_specs[0].name: inputs[0]}
    folded = sess.run(feed)
    sess.interpreter.plans = [StepPlan([], frozenset()) for _ in plans]
    plain = sess.run(feed)
    for key in folded:
        np.testing.assert_array_equal(folded[key], plain[key])
