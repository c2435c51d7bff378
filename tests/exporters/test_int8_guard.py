"""The int8 guard's choice among measured candidates (format-blind, shared by ONNX and TFLite):
it never ships a candidate worse than one it measured."""
from __future__ import annotations

from edgeport.exporters.int8_guard import pick, search_float_prefix


def trial(k: int, cosine: float, agreement: float, ok: bool = False, misses: int = 1) -> dict:
    t = {"float_layers": k, "cosine": cosine, "sqnr_db": 10.0, "agreement": agreement, "ok": ok}
    if not ok:
        t["misses"] = ["x"] * misses
    return t


def test_a_step_that_pays_too_little_in_cosine_still_ships_when_it_measured_better():
    # the case of issue 15: full int8 at 0.797 agreement, 2 float layers at 0.906, cosine barely
    # better — the old rule stopped and shipped full int8
    first = trial(0, 0.980, 0.797, misses=2)
    second = trial(2, 0.981, 0.906, misses=1)
    result = search_float_prefix(first, 40, lambda k: second)
    assert [t["float_layers"] for t in result.trials] == [0, 2]  # the search stopped after the step
    assert result.float_layers == 2 and result.chosen == 1 and not result.met
    assert result.why.startswith("no candidate met the criteria: the best measured one ships")


def test_the_cheapest_candidate_meeting_the_criteria_wins():
    trials = [trial(0, 0.95, 0.90), trial(4, 0.995, 0.97, ok=True), trial(8, 0.999, 0.99, ok=True)]
    assert pick(trials) == (1, "the cheapest candidate meeting every criterion")
    # a cost other than the float-layer count (TFLite: ops kept float; CoreML: bytes)
    assert pick(trials, cost=lambda i: [0, 9, 5][i])[0] == 2


def test_without_a_candidate_meeting_them_fewer_misses_then_agreement_then_cosine():
    trials = [trial(0, 0.99, 0.93, misses=1), trial(2, 0.995, 0.94, misses=2), trial(4, 0.97, 0.93, misses=1)]
    assert pick(trials)[0] == 0
    assert pick([trial(0, 0.97, 0.93), trial(2, 0.96, 0.94)])[0] == 1
    assert pick([trial(0, 0.97, 0.93), trial(2, 0.98, 0.93)])[0] == 1
    first = trial(0, 0.999, 0.99, ok=True)
    result = search_float_prefix(first, 40, lambda k: (_ for _ in ()).throw(AssertionError("not needed")))
    assert result.met and result.float_layers == 0 and result.trials == [first]
