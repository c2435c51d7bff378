"""The names a torch model gives its inputs and outputs, and which names every format can carry.

Inputs are named after ``forward()``'s positional parameters; outputs after what ``forward``
returns: a dict's keys or a namedtuple's fields (in order), ``output_0, output_1...`` for a tuple
or list, ``output`` for a single tensor. Nested returns are flattened depth first, in the order
torch's exporters flatten them (dict insertion order, then sequence order), each leaf named by its
path joined with ``_`` (``{"heads": (a, b)}`` gives ``heads_0``, ``heads_1``).

What each format does with a name (measured with the converters edgeport uses):

- ONNX / onnxruntime: any unique string.
- TFLite and TF.js (a TensorFlow signature): input names must look like TF op names,
  ``[A-Za-z0-9.][A-Za-z0-9_.\\-/]*`` — ``my image``, ``_mask``, ``a:0`` and non-ASCII letters make
  ``tf.saved_model.save`` refuse the signature; output keys may be any string.
- CoreML (coremltools ML Program): feature names are ``[A-Za-z_][A-Za-z0-9_]*``; anything else is
  silently rewritten (``input.1`` -> ``input_1``, ``1abc`` -> ``var_1abc``), and MIL's type names
  (:data:`COREML_RESERVED`) get ``_workaround`` appended.

A name every format keeps as given is therefore an ASCII letter followed by letters, digits and
underscores, and not one of CoreML's reserved words; edgeport refuses other names for torch models
rather than let one artifact rename them silently.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Iterator, Sequence

from .data import LABELS_PREFIX
from .errors import ModelLoadError

#: names every format carries unchanged
PORTABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: feature names coremltools renames (``<name>_workaround``): MIL's own type and keyword names
COREML_RESERVED = frozenset({
    "any", "bool", "program", "func", "tensor", "list", "dict", "tuple", "true", "false", "string",
    "bf16", "fp16", "fp32", "fp64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
    "uint64", "state",
})
#: the --data key that holds labels; an input of that name could not be given in a --data file
LABELS_KEY = "labels"


def default_input_names(count: int) -> tuple[str, ...]:
    """Names for inputs nothing names: ``x`` for one input, ``input_0, input_1...`` for more."""
    return ("x",) if count == 1 else tuple(f"input_{i}" for i in range(count))


def forward_input_names(module: Any, count: int) -> tuple[str, ...] | None:
    """The first ``count`` positional parameters of ``module.forward`` (``self`` excluded), or
    None when forward takes fewer named ones (``*args``) or has no readable signature."""
    forward = getattr(module, "forward", None)
    if forward is None:
        return None
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p.name for p in params
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return tuple(positional[:count]) if len(positional) >= count else None


def flatten_outputs(out: Any, where: str = "forward()") -> list[tuple[str, Any]]:
    """``(name, tensor)`` for every tensor ``forward`` returned, in the exporters' order.
    Anything but tensors, dicts with string keys, namedtuples, tuples and lists is refused."""
    return list(_leaves(out, "", where, top=True))


def _leaves(value: Any, path: str, where: str, top: bool = False) -> Iterator[tuple[str, Any]]:
    if _is_tensor(value):
        yield (path or "output"), value
        return
    if isinstance(value, dict):
        items = list(value.items())
        bad = [k for k, _ in items if not isinstance(k, str)]
        if bad:
            raise ModelLoadError(f"{where} returned a dict with the key {bad[0]!r} ({type(bad[0]).__name__}); "
                                 "output names come from the keys, which must be strings")
    elif _is_namedtuple(value):
        items = list(zip(value._fields, value))
    elif isinstance(value, (tuple, list)):
        items = [(f"output_{i}" if top else str(i), v) for i, v in enumerate(value)]
    else:
        at = f" at {path!r}" if path else ""
        what = "None" if value is None else f"a value of type {type(value).__name__}"
        raise ModelLoadError(f"{where} returned {what}{at}; every output must be a tensor "
                             "(or a dict, namedtuple, tuple or list of tensors)")
    if not items:
        at = f" at {path!r}" if path else ""
        raise ModelLoadError(f"{where} returned an empty {type(value).__name__}{at}; nothing to export")
    for key, item in items:
        yield from _leaves(item, f"{path}_{key}" if path else key, where)


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "is_floating_point")


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def name_problem(name: str, kind: str = "input") -> str | None:
    """Why a format could not carry the ``kind`` (input/output) ``name`` unchanged, or None."""
    if not isinstance(name, str) or not name:
        return "names must be non-empty strings"
    if not PORTABLE_NAME.fullmatch(name):
        who = "TFLite/TF.js signatures refuse other input names and CoreML" if kind == "input" else "CoreML"
        return ("names must start with an ASCII letter and hold only ASCII letters, digits and underscores "
                f"({who} rewrites them)")
    if name in COREML_RESERVED:
        return f"{name!r} is a reserved word in CoreML, which would rename it {name + '_workaround'!r}"
    return None


def check_names(model: str, input_names: Sequence[str], output_names: Sequence[str],
                derived: bool) -> None:
    """Refuse names some format could not carry, duplicates, an input and an output sharing a
    name, and inputs a --data file could not hold. ``derived``: the names came from the model
    itself (forward's arguments, its return value), which the message says how to override."""
    how = ("rename it in the model, or give input_names=/output_names= in a ModelSource returned by "
           "the factory" if derived else "choose another name")
    for kind, names in (("input", input_names), ("output", output_names)):
        seen = set()
        for name in names:
            problem = name_problem(name, kind)
            if problem:
                raise ModelLoadError(f"{model}: {kind} name {name!r} cannot be carried by every format: "
                                     f"{problem}; {how}")
            if name in seen:
                raise ModelLoadError(f"{model}: two {kind}s are named {name!r}; {how}")
            seen.add(name)
    both = sorted(set(input_names) & set(output_names))
    if both:
        raise ModelLoadError(f"{model}: {both[0]!r} names both an input and an output (ONNX and CoreML need "
                             f"distinct names); {how}")
    for name in input_names:
        if name == LABELS_KEY or name.startswith(LABELS_PREFIX):
            raise ModelLoadError(f"{model}: input name {name!r} is the --data key for labels, so a --data file "
                                 f"could not give this input; {how}")
