"""report.json is strict JSON: figures and free-form facts that are not finite are written as null."""
from __future__ import annotations

import json
import math

from edgeport.validation.report import Latency, Report, Size


LATENCY = Latency("measured", "onnxruntime", "here", 1, 1.0, 1.0, 1.0, 1.0, 3, 0.1, times_ms=(1.0, 1.0, 1.0))


def test_facts_that_are_not_finite_are_written_as_null():
    facts = {"tensor_policy": {"trials": [{"sqnr_db": math.inf, "cosine": 1.0}, {"sqnr_db": 41.5}]},
             "note": "lossless trial", "scales": (0.5, -math.inf)}
    report = Report("t", "m", "ios-coreml", "coreml", "coreml-emulator", "lut8", 0.0, Size(10, 20, 5, 1), None,
                    None, LATENCY, None, (), precision_facts=facts, auto={"candidates": [{"worst_cosine": math.nan}]})
    doc = json.loads(report.to_json())
    assert doc["precision_facts"]["tensor_policy"]["trials"] == [{"sqnr_db": None, "cosine": 1.0}, {"sqnr_db": 41.5}]
    assert doc["precision_facts"]["scales"] == [0.5, None] and doc["precision_facts"]["note"] == "lossless trial"
    assert doc["auto"]["candidates"] == [{"worst_cosine": None}]
    assert facts["tensor_policy"]["trials"][0]["sqnr_db"] == math.inf  # the report's own facts untouched


def test_the_terminal_cuts_a_long_reason_at_a_word_and_the_json_keeps_it_whole():
    from edgeport.validation.render import render_report

    why = ("parity: sentence_embedding: cosine 0.372838 (min 0.98); sentence_embedding: sqnr -1.0 dB "
           "(min 20.0 dB); top1_agreement: 0.41 (min 0.95)")
    auto = {"pick": "fp32 (baseline)", "objective": "size", "why": "nothing else fits",
            "candidates": [{"label": "int8", "bytes": 2048, "passed": False, "why": why, "p50_ms": {"ort": 1.0}}]}
    report = Report("t", "m", "local-onnx", "onnx", "onnxruntime", "fp32", 0.0, Size(10, 20, 5, 1), None,
                    None, LATENCY, None, (), auto=auto)
    line = next(x for x in render_report(report).splitlines() if "int8" in x and "no:" in x)
    shown = line.split("no: ", 1)[1]
    assert shown.endswith(" …") and len(shown) <= 92 and why.startswith(shown[:-2])
    assert not shown[:-2].endswith(("(", ";", " "))
    assert json.loads(report.to_json())["auto"]["candidates"][0]["why"] == why
