"""Artifact outputs brought to the source's layout before they are compared — by transposing a
channels-last output back to channels-first where that is what the format did, never by
reshaping values into a shape they do not have."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import RuntimeLoadError

#: source layout -> the channels-last permutation a converter may have produced, by rank
_CHANNELS_LAST = {3: ("NCL", "NLC", (0, 2, 1)), 4: ("NCHW", "NHWC", (0, 3, 1, 2)),
                  5: ("NCDHW", "NDHWC", (0, 4, 1, 2, 3))}


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def to_source_layout(reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``actual`` with every output in its reference's shape, and how each got there.

    Same shape: kept. Same shape but for size-1 axes: those axes dropped/added (no value moves).
    A channels-last shape of a channels-first reference (NHWC for NCHW, NLC for NCL): transposed
    back. When both readings fit (C == H == W) the shape cannot tell, and the output is kept as
    the artifact gives it. Anything else is an error naming the output and both shapes.
    """
    out, layouts = {}, {}
    for name, ref in reference.items():
        got = np.asarray(actual[name])
        rs, gs = tuple(ref.shape), tuple(got.shape)
        if rs == gs:
            out[name], layouts[name] = got, "same as the source"
            continue
        if _squeezed(rs) == _squeezed(gs):
            out[name], layouts[name] = got.reshape(rs), f"{list(gs[1:])} (size-1 axes differ from the source's)"
            continue
        spec = _CHANNELS_LAST.get(len(rs))
        if spec is not None and len(gs) == len(rs):
            first, last, perm = spec
            back = tuple(gs[i] for i in perm)
            if back == rs:
                out[name] = np.transpose(got, perm)
                layouts[name] = f"{last} in the artifact, transposed to the source's {first} for comparison"
                continue
        raise RuntimeLoadError(f"output {name!r}: the artifact gives shape {list(gs)}, the source {list(rs)}; "
                               "no layout change explains it")
    return out, layouts
