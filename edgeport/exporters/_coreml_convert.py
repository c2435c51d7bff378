"""torch module -> CoreML ML Program (uncompressed), and the coremltools import done cheaply."""
from __future__ import annotations

import sys
import warnings
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError, MissingDependencyError, one_line
from ..io_names import flatten_outputs


def import_coremltools() -> Any:
    """Import coremltools without letting it import TensorFlow.

    coremltools probes for TensorFlow at import (~9 s here) for its TF frontends, which the torch
    path never uses. When TensorFlow is not loaded yet, it is hidden during that import only; a
    later ``import tensorflow`` elsewhere works as usual.
    """
    from . import _coreml_torch_ops

    if sys.modules.get("coremltools") is not None:
        _coreml_torch_ops.register()  # imported elsewhere first: the converters must still be added
        return sys.modules["coremltools"]
    hide = [m for m in ("tensorflow", "tf_keras") if m not in sys.modules]
    for m in hide:
        sys.modules[m] = None  # type: ignore[assignment]  # makes `import tensorflow` raise ImportError
    try:
        import coremltools as ct
    except ImportError as exc:
        raise MissingDependencyError("coremltools", extra="coreml") from exc
    finally:
        for m in hide:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    _coreml_torch_ops.register()
    return ct


def _ct_dtype(arr: np.ndarray) -> Any:
    """CoreML input/output element types: floats stay float32 at the interface (the program casts
    to fp16 inside), integers become int32 (CoreML has no int64 tensors)."""
    if arr.dtype.kind == "f":
        return np.float32
    if arr.dtype.kind in "iu":
        return np.int32
    if arr.dtype.kind == "b":
        return np.bool_
    raise ConversionError("coreml", "inputs", f"unsupported input dtype {arr.dtype}")


def convert_module(module: Any, example_inputs: Sequence[np.ndarray], input_names: Sequence[str],
                   output_names: Sequence[str], fp16: bool, deployment_target: str) -> tuple[Any, str]:
    """Convert with torch.export (+ run_decompositions), falling back to torch.jit.trace for
    modules torch.export cannot capture. Returns (MLModel, how it was captured)."""
    import torch

    ct = import_coremltools()
    module = module.eval()
    args = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in example_inputs)
    with torch.no_grad():
        ref = module(*args)
    ref_arrays = [r.detach().numpy() for _, r in flatten_outputs(ref)]
    if not _flat(ref):
        module = _tuple_outputs(module)
    inputs = [ct.TensorType(name=n, shape=tuple(x.shape), dtype=_ct_dtype(x)) for n, x in zip(input_names, example_inputs)]
    outputs = [ct.TensorType(name=n, dtype=_ct_dtype(r)) for n, r in zip(output_names, ref_arrays)]
    kwargs = dict(inputs=inputs, outputs=outputs, convert_to="mlprogram",
                  minimum_deployment_target=getattr(ct.target, deployment_target),
                  compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32)
    errors = []
    for how in ("torch.export", "torch.jit.trace"):
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if how == "torch.export":
                    program = torch.export.export(module, args).run_decompositions({})
                else:
                    program = torch.jit.trace(module, args, check_trace=False)
                return ct.convert(program, **kwargs), how
        except Exception as exc:  # coremltools/torch raise many types; keep each message
            errors.append(f"{how}: {type(exc).__name__}: {one_line(exc, last=True)}")
    raise ConversionError("coreml", "torch→CoreML", " | ".join(errors))


def _flat(out: Any) -> bool:
    """Whether coremltools takes ``out`` as it is: a tensor or a flat tuple/list of tensors."""
    leaves = out if isinstance(out, (tuple, list)) else (out,)
    return not isinstance(out, dict) and all(hasattr(x, "detach") for x in leaves)


def _tuple_outputs(module: Any) -> Any:
    """``module`` returning its outputs as one flat tuple, in :func:`flatten_outputs`' order:
    coremltools' torch frontend does not take a dict return, nor nested ones."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> tuple[Any, ...]:
            return tuple(t for _, t in flatten_outputs(self.inner(*args)))

    return TupleOutputs(module).eval()
