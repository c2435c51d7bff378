"""Torch ops coremltools 9 has no converter for, added through its public registration API.

``new_ones`` appears when Hugging Face BERT models (e.g. all-MiniLM-L6-v2) build their attention
mask; coremltools converts ``new_zeros``/``new_full`` but not ``new_ones``.
"""
from __future__ import annotations

_done = False


def register() -> None:
    """Register the missing converters once (a name coremltools already knows is left alone)."""
    global _done
    if _done:
        return
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY, register_torch_op
    from coremltools.converters.mil.mil import types

    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_DTYPE_STRING

    if "new_ones" not in _TORCH_OPS_REGISTRY:
        def new_ones(context, node):  # noqa: ANN001, ANN202 - coremltools' converter signature
            inputs = _get_inputs(context, node)
            size = inputs[1]
            # TorchScript passes (self, size, dtype, layout, device, pin_memory); the dtype matters:
            # HF masks are bool ones combined with `&`
            dtype_code = inputs[2].val if len(inputs) > 2 and inputs[2] is not None else None
            dtype = NUM_TO_DTYPE_STRING.get(int(dtype_code), "fp32") if dtype_code is not None else "fp32"
            if isinstance(size, list):
                size = mb.concat(values=size, axis=0)
            if size.val is not None and size.val.size == 0:  # torch.Size([]) -> a scalar
                ones = mb.const(val=1.0)
            else:
                if types.is_float(size.dtype):
                    size = mb.cast(x=size, dtype="int32")
                ones = mb.fill(shape=size, value=1.0)
            context.add(mb.cast(x=ones, dtype=dtype, name=node.name) if dtype != "fp32"
                        else mb.identity(x=ones, name=node.name))

        register_torch_op(new_ones)
    _done = True
