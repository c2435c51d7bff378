"""A .tflite is untrusted data: mutated flatbuffers reach the op inspector and the LiteRT runtime
(in its child process) and come back as a result or a named error — never another exception,
and a crash of the native interpreter is a named error too."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.errors import EdgeportError
from edgeport.validation.inspect import inspect_artifact


@pytest.fixture(scope="module")
def flatbuffer(tmp_path_factory) -> bytes:
    import tensorflow as tf

    w = tf.constant(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, w)) + 1.0}

    m = M()
    return tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m).convert()


@settings(max_examples=800, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_flatbuffers_give_named_errors_in_the_inspector(flatbuffer, tmp_path, data):
    buf = bytearray(flatbuffer)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    path = tmp_path / "m.tflite"
    path.write_bytes(bytes(buf))
    try:
        inspect_artifact("tflite", path)
    except EdgeportError:
        pass


def test_mutated_flatbuffers_in_the_runtime_are_named_errors(flatbuffer, tmp_path):
    """The native interpreter is run the way validation runs it (a bounded child process): a
    damaged file that makes it crash is one named error, and good files still run."""
    from edgeport.recheck import run_artifact

    np.savez(tmp_path / "x.npz", x=np.ones((2, 6), np.float32))
    rng = np.random.default_rng(0)
    for k in range(24):
        buf = bytearray(flatbuffer)
        for i in rng.integers(0, len(buf), size=4):
            buf[i] = int(rng.integers(0, 256))
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(bytes(buf))
        try:  # the damaged file runs or is refused by name; any other exception fails the test
            run_artifact(path, tmp_path / "x.npz", timeout_s=60)
        except EdgeportError:
            pass
    path = tmp_path / "good.tflite"
    path.write_bytes(flatbuffer)
    out = run_artifact(path, tmp_path / "x.npz")
    expected = np.maximum(np.ones((1, 6), np.float32) @ np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4), 0) + 1
    np.testing.assert_allclose(out["y"], np.repeat(expected, 2, 0), rtol=1e-5)
