"""report.json is strict JSON: figures and free-form facts that are not finite are written as null."""
from __future__ import annotations

import json
import math

from edgeport.validation.report import Latency, Report, Size


def test_facts_that_are_not_finite_are_written_as_null():
    lat = Latency("measured", "onnxruntime", "here", 1, 1.0, 1.0, 1.0, 1.0, 3, 0.1, times_ms=(1.0, 1.0, 1.0))
    facts = {"tensor_policy": {"trials": [{"sqnr_db": math.inf, "cosine": 1.0}, {"sqnr_db": 41.5}]},
             "note": "lossless trial", "scales": (0.5, -math.inf)}
    report = Report("t", "m", "ios-coreml", "coreml", "coreml-emulator", "lut8", 0.0, Size(10, 20, 5, 1), None,
                    None, lat, None, (), precision_facts=facts, auto={"candidates": [{"worst_cosine": math.nan}]})
    doc = json.loads(report.to_json())
    assert doc["precision_facts"]["tensor_policy"]["trials"] == [{"sqnr_db": None, "cosine": 1.0}, {"sqnr_db": 41.5}]
    assert doc["precision_facts"]["scales"] == [0.5, None] and doc["precision_facts"]["note"] == "lossless trial"
    assert doc["auto"]["candidates"] == [{"worst_cosine": None}]
    assert facts["tensor_policy"]["trials"][0]["sqnr_db"] == math.inf  # the report's own facts untouched
