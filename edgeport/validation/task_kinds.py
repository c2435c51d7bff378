"""What a labelled output is, read from the output's shape and its labels' shape and dtype.

- **classification**: output ``[N, C]``, integer labels ``[N]`` in ``[0, C)``;
- **segmentation** (dense classification): output ``[N, C, ...]`` (or ``[N, ..., C]``), integer
  labels ``[N, ...]`` — one class id per pixel (or per step of a sequence);
- **regression**: float labels shaped like the output (size-1 axes aside: ``[N]`` fits ``[N, 1]``).

Anything else is refused before any work, in one line naming the output: labels that are not
numbers, NaN, a shape that fits no kind, class ids out of ``[0, C)``, float labels for a class
axis — even integral ones (``3.0``): the cast is the user's to make, not a guess of ours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..data import Dataset
from ..errors import ModelLoadError

CLASSIFICATION, SEGMENTATION, REGRESSION = "classification", "segmentation", "regression"
KINDS = (CLASSIFICATION, SEGMENTATION, REGRESSION)


@dataclass(frozen=True)
class LabelledOutput:
    """One output with labels: its kind and, for the classification kinds, the class axis (of the
    batched output) and the number of classes."""

    name: str
    kind: str
    class_axis: int | None = None
    classes: int | None = None

    def predictions(self, output: np.ndarray) -> np.ndarray:
        """Class ids (arg-max over the class axis), or the values themselves for a regression."""
        out = np.asarray(output)
        if self.class_axis is None:
            return out.astype(np.float64)
        return out.argmax(axis=self.class_axis)

    def shaped(self, labels: np.ndarray, output: np.ndarray) -> np.ndarray:
        """``labels`` in the shape of :meth:`predictions` (only size-1 axes change)."""
        n = len(output)
        want = (output.shape if self.class_axis is None else
                tuple(d for i, d in enumerate(output.shape) if i != self.class_axis))
        lab = np.asarray(labels).reshape((n,) + tuple(want[1:]))
        return lab.astype(np.float64) if self.class_axis is None else lab.astype(np.int64)


def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _class_axis(out_shape: tuple[int, ...], label_shape: tuple[int, ...]) -> int | None:
    """The per-sample axis of the output holding classes: the first (NCHW) or else the last (NHWC),
    when the rest of the output's shape is the labels' and there are two classes or more."""
    for axis in dict.fromkeys((0, len(out_shape) - 1) if out_shape else ()):
        if out_shape[axis] < 2:
            continue
        rest = out_shape[:axis] + out_shape[axis + 1:]
        if _squeezed(rest) == _squeezed(label_shape):
            return axis
    return None


def _where(mask: np.ndarray) -> str:
    """Where the first flagged element is: ``sample i``."""
    flat = mask.reshape(len(mask), -1).any(1)
    return f"sample {int(flat.argmax())}"


def label_kind(name: str, output_shape: Sequence[int], labels: np.ndarray) -> LabelledOutput:
    """The kind of output ``name`` (per-sample shape ``output_shape``) given ``labels`` ``[N, ...]``;
    :class:`ModelLoadError` in one line when the labels fit no kind or hold impossible values."""
    lab = np.asarray(labels)
    key = f"labels for output {name!r}"
    if lab.dtype.kind not in "biuf":
        raise ModelLoadError(f"{key} are {lab.dtype}; labels must be numbers "
                             "(class ids as integers, regression targets as floats)")
    if lab.ndim == 0 or len(lab) == 0:
        raise ModelLoadError(f"{key} hold no samples; the first axis must be the samples")
    out_shape, label_shape = tuple(int(d) for d in output_shape), tuple(lab.shape[1:])
    axis = _class_axis(out_shape, label_shape)
    shaped_like_output = _squeezed(out_shape) == _squeezed(label_shape)
    if lab.dtype.kind == "f":
        if not np.isfinite(lab).all():
            raise ModelLoadError(f"{key} hold NaN or infinity ({_where(~np.isfinite(lab))})")
        if shaped_like_output:
            return LabelledOutput(name, REGRESSION)
        if axis is not None:
            whole = lab == np.round(lab)
            if whole.all():
                raise ModelLoadError(f"{key} are float class ids ({lab.dtype}); class ids must be integers: "
                                     "save them with labels.astype(numpy.int64)")
            bad = lab[~whole].flat[0]
            raise ModelLoadError(f"{key} hold non-integral values ({bad:g}, {_where(~whole)}), but the output "
                                 f"is a classifier's ({out_shape[axis]} classes): class ids must be integers")
        raise _no_kind(key, out_shape, label_shape)
    if axis is None:
        if shaped_like_output:
            raise ModelLoadError(f"{key} are integers shaped like the output {list(out_shape)}, which has no "
                                 "class axis: regression targets must be floats (labels.astype(numpy.float32))")
        raise _no_kind(key, out_shape, label_shape)
    classes = out_shape[axis]
    ids = lab.astype(np.int64)
    if (ids < 0).any():
        raise ModelLoadError(f"{key} hold a negative class id ({int(ids.min())}, {_where(ids < 0)}); "
                             f"output {name!r} has {classes} classes [0, {classes})")
    if (ids >= classes).any():
        raise ModelLoadError(f"{key} hold class id {int(ids.max())} ({_where(ids >= classes)}), out of range: "
                             f"output {name!r} has {classes} classes [0, {classes})")
    rest = out_shape[:axis] + out_shape[axis + 1:]
    kind = CLASSIFICATION if int(np.prod(rest, dtype=np.int64)) == 1 else SEGMENTATION
    return LabelledOutput(name, kind, axis + 1, classes)


def _no_kind(key: str, out_shape: tuple[int, ...], label_shape: tuple[int, ...]) -> ModelLoadError:
    return ModelLoadError(f"{key} have per-sample shape {list(label_shape)}, which fits no kind for an output "
                          f"of per-sample shape {list(out_shape)}: class ids [N] or [N, H, W] (integers, "
                          "the output with a class axis) or regression targets shaped like the output (floats)")


def assumed_task(output_names: Sequence[str], output_shapes: Mapping[str, Sequence[int]]) -> tuple[str, str]:
    """(task, why) for a model that declared none: a first output shaped ``[N, C]`` with C >= 2
    is judged as a classifier (top-1 agreement), anything else stays "generic" (element-wise
    parity only). A user who knows better declares ``--task``."""
    if output_names:
        name = output_names[0]
        shape = tuple(int(d) for d in output_shapes.get(name, ()))
        if len(shape) == 1 and shape[0] >= 2:
            return CLASSIFICATION, (f"assumed: output {name!r} is [N, {shape[0]}], judged as a classifier's "
                                    "logits (top-1 agreement checked); declare --task regression or embedding "
                                    "if it is not one")
    return "generic", "not declared; no output is shaped [N, C]: element-wise parity only"


def check_labels(data: Dataset | None, output_shapes: Mapping[str, Sequence[int]]) -> tuple[LabelledOutput, ...]:
    """Every labelled output of ``data`` with its kind, in output order (``output_shapes``: the
    per-sample shape of each output, in the model's order). The first problem is raised."""
    if data is None or not data.has_labels:
        return ()
    labels = data.labels_for(list(output_shapes))
    return tuple(label_kind(name, output_shapes[name], arr) for name, arr in labels.items())


__all__ = ["CLASSIFICATION", "KINDS", "REGRESSION", "SEGMENTATION", "LabelledOutput",
           "assumed_task", "check_labels", "label_kind"]
