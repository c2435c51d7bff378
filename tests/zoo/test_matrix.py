"""The layer-zoo matrix, every cell in every `make test`: 11 user-like models x 4 targets x
{fp32, fp16, int8}, each with its expected outcome. A cell not listed in :data:`NOT_PASSING` must
pass every check of its report; a listed one must end exactly as listed — the same failing
checks, or a refusal whose line names what was refused and gives a hint. Either way a change is a
test failure: a fixed cell is moved out of the list, a broken one is a regression.

The README's matrix table is printed by ``python tests/zoo/run_matrix.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix import PRECISIONS, TARGETS, run_cell  # noqa: E402
from models import ZOO  # noqa: E402

pytestmark = pytest.mark.real

#: (model, target, precision) -> ("fail", {failing checks}) or ("refused", [substrings of the error])
NOT_PASSING: dict[tuple[str, str, str], tuple[str, object]] = {
    # 64 LSTM steps on token embeddings: int8 flips two of the 48 evaluation sequences to wrong
    # answers in onnxruntime (agreement 0.958, above its 0.95 bar; 4.2 points of accuracy, above
    # int8's 2-point budget); full-integer LiteRT drifts further (agreement 0.94 in both LiteRT
    # runtimes; the guard ships its best measured candidate). fp16 passes on both, CoreML and
    # TF.js int8 too.
    ("embed_lstm", "local-onnx", "int8"): ("fail", {"accuracy_drop"}),
    ("embed_lstm", "android-tflite", "int8"): ("fail", {"top1_agreement", "accuracy_drop",
                                                       "top1_agreement:litert-reference"}),
}

#: cells that sit at their bar, so which side they land on depends on the CPU: the zoo trains its
#: models on the host, and float sums of another SIMD width give other weights. On an AVX2-only
#: host both embed_lstm int8 cells passed (agreement 1.000 in onnxruntime, 0.958 in LiteRT) and
#: conv1d_signal's LiteRT int8 lost more than int8's 2 accuracy points. Such a cell must either pass
#: or fail exactly as listed (in NOT_PASSING, or here), and agree at least 0.9 with fp32 either way.
AT_THE_BAR: dict[tuple[str, str, str], set[str]] = {
    **{cell: NOT_PASSING[cell][1] for cell in (("embed_lstm", "local-onnx", "int8"),
                                               ("embed_lstm", "android-tflite", "int8"))},
    ("conv1d_signal", "android-tflite", "int8"): {"accuracy_drop"},
}

CELLS = [(m, t, p) for m in ZOO for p in PRECISIONS for t in TARGETS]


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.mark.parametrize("model,target,precision", CELLS, ids=["-".join(c) for c in CELLS])
def test_cell(zoo_root, model, target, precision):
    cell = run_cell(model, target, precision, zoo_root / model, zoo_root / model / "cache")
    kind, detail = NOT_PASSING.get((model, target, precision), ("pass", None))
    if (model, target, precision) in AT_THE_BAR:
        assert cell.outcome in ("pass", "fail"), cell.error
        if cell.outcome == "fail":
            assert set(cell.failing) <= AT_THE_BAR[(model, target, precision)] and cell.failing, cell
        assert cell.top1_agreement is not None and cell.top1_agreement >= 0.9, cell
        assert cell.worst_cosine is not None and cell.worst_cosine > 0.9, cell
    elif kind == "pass":
        assert cell.outcome == "pass", cell.error or cell.failing
        assert cell.worst_cosine is not None and cell.worst_cosine > 0.9, cell
        assert cell.size_ratio is not None and cell.size_ratio > 0, cell
    elif kind == "fail":
        assert cell.outcome == "fail" and set(cell.failing) == detail, cell
    else:
        assert cell.outcome == "refused", cell
        assert all(s in cell.error for s in detail) and "hint:" in cell.error, cell.error


def test_the_expected_table_meets_the_bar():
    """At least 90 % of the fp32/fp16 cells pass on every target; a refusal names a hint."""
    for target in TARGETS:
        float_cells = [c for c in CELLS if c[1] == target and c[2] != "int8"]
        passing = [c for c in float_cells if c not in NOT_PASSING]
        assert len(passing) >= 0.9 * len(float_cells), target
    assert all(kind in ("fail", "refused") for kind, _ in NOT_PASSING.values())
    assert all(c in CELLS for c in NOT_PASSING)
