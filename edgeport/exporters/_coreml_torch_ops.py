"""Torch ops coremltools 9 has no converter for, added through its public registration API.

``new_ones`` appears when Hugging Face BERT models (e.g. all-MiniLM-L6-v2) build their attention
mask; coremltools converts ``new_zeros``/``new_full`` but not ``new_ones``.

``prelu`` is replaced: coremltools hands a 3-D or 5-D input (after ``Conv1d`` / ``Conv3d``) to
MIL's ``prelu``, which takes rank 4 only, and the conversion fails. The replacement gives MIL a
rank-4 view — a trailing axis of 1 for 3-D, depth and height merged for 5-D — and restores the
shape after; per-channel slopes stay on axis 1, so the result is the same function.

``log_softmax`` is replaced: coremltools writes it as ``log(softmax(x))``, and in fp16 every
probability below fp16's smallest value (about 6e-8, a logit 17 below the top one) becomes 0 and
its log -inf. The replacement is the shifted form ``(x - max) - log(sum(exp(x - max)))``, finite
at every precision.
"""
from __future__ import annotations

import numpy as np

_MARK = "_edgeport_converter"


def register() -> None:
    """Register the missing converters in the registry of the coremltools loaded now (a name
    coremltools already knows is left alone). The check is on that registry, not on a flag of this
    module: coremltools imported afresh (the TensorFlow frontend needs that) has a new, empty one."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    if getattr(_TORCH_OPS_REGISTRY.get_func("prelu"), _MARK, False):
        return
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op
    from coremltools.converters.mil.mil import types

    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_DTYPE_STRING

    if _TORCH_OPS_REGISTRY.get_func("new_ones") is None:
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

    def prelu(context, node):  # noqa: ANN001, ANN202 - coremltools' converter signature
        x, alpha = _get_inputs(context, node, expected=2)
        slopes = np.asarray(alpha.val, dtype=np.float32).reshape(-1)
        if x.rank >= 2:
            slopes = np.broadcast_to(slopes, (x.shape[1],)).astype(np.float32)
        if x.rank == 4:
            context.add(mb.prelu(x=x, alpha=slopes, name=node.name))
            return
        if x.rank in (1, 2, 3):
            axes = {1: [1, 2, 3], 2: [2, 3], 3: [3]}[x.rank]
            y = mb.prelu(x=mb.expand_dims(x=x, axes=axes), alpha=slopes)
            context.add(mb.squeeze(x=y, axes=axes, name=node.name))
            return
        # rank 5 and more: merge every spatial axis but the last into one
        shape = mb.shape(x=x)
        head = mb.slice_by_index(x=shape, begin=[0], end=[2])
        tail = mb.slice_by_index(x=shape, begin=[x.rank - 1], end=[x.rank])
        view = mb.concat(values=[head, np.array([-1], dtype=np.int32), tail], axis=0)
        y = mb.prelu(x=mb.reshape(x=x, shape=view), alpha=slopes)
        context.add(mb.reshape(x=y, shape=shape, name=node.name))

    setattr(prelu, _MARK, True)  # set before registering: the registry stores this function object
    register_torch_op(prelu, override=True)

    def log_softmax(context, node):  # noqa: ANN001, ANN202 - coremltools' converter signature
        inputs = _get_inputs(context, node, min_expected=2)
        x, axis = inputs[0], int(inputs[1].val)
        shifted = mb.sub(x=x, y=mb.reduce_max(x=x, axes=[axis], keep_dims=True))
        total = mb.reduce_sum(x=mb.exp(x=shifted), axes=[axis], keep_dims=True)
        context.add(mb.sub(x=shifted, y=mb.log(x=total), name=node.name))

    register_torch_op(log_softmax, override=True)
