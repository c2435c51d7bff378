"""Helpers for the emulator's tests: build a MIL program with coremltools' builder, save it as a
real .mlpackage, run it in the emulator."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def ct():
    from edgeport.exporters._coreml_convert import import_coremltools

    return import_coremltools()


@pytest.fixture(scope="module")
def mil_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mil")


@pytest.fixture(scope="module")
def run_mil(ct, mil_dir) -> Callable[..., tuple[dict[str, np.ndarray], set[str]]]:
    """run_mil(build, inputs, fp16=False, target="iOS16") -> (emulator outputs, op types saved).

    ``build(mb, *input_vars)`` returns the output var(s); ``inputs`` maps names to arrays.
    """
    from coremltools.converters.mil import Builder as mb

    from edgeport.validation.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    def run(build: Callable[..., Any], inputs: dict[str, np.ndarray], fp16: bool = False,
            target: str = "iOS16") -> tuple[dict[str, np.ndarray], set[str]]:
        specs = [mb.TensorSpec(shape=v.shape, dtype=_mil_dtype(ct, v)) for v in inputs.values()]
        names = list(inputs)

        # the builder reads the parameter list, so the function needs one named parameter per input
        if len(specs) == 1:
            def body(x0):
                return build(mb, x0)
        else:
            def body(x0, x1):
                return build(mb, x0, x1)
        prog = mb.program(input_specs=specs, opset_version=getattr(ct.target, target))(body)

        # builder input names are positional; rename to ours via the spec after conversion
        ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                        compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32)
        spec_inputs = [i.name for i in ml.get_spec().description.input]
        path = mil_dir / f"p{next(_counter)}.mlpackage"
        ml.save(str(path))
        sess = CoreMLEmulatorRuntime().load(path)
        feed = {sn: inputs[n] for sn, n in zip(spec_inputs, names)}
        out = sess.run(feed)
        return out, {op.type for op in sess.program.operations}

    return run


def _mil_dtype(ct, arr: np.ndarray):
    from coremltools.converters.mil.mil import types

    if arr.dtype.kind == "f":
        return types.fp32
    if arr.dtype.kind == "b":
        return types.bool
    return types.int32
