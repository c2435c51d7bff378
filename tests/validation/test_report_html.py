"""report.html in every bundle and index.html for a multi-target export: listed in the manifest,
self-contained, escaped, and loaded in real headless Chromium (no console errors, not blank)."""
from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import edgeport
from edgeport.pipeline import export
from edgeport.source import ModelSource
from edgeport.validation.bundle import sha256_file
from edgeport.validation.html.markup import figure
from edgeport.validation.html.report_page import Figures, render_report
from edgeport.validation.runtimes.tfjs_chromium import CHROMIUM, CHROMIUM_ARGS

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
#: every tag the pages are built from: anything else in a page came from a report's text
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "table", "tr", "th",
        "td", "ul", "li", "figure", "img", "figcaption", "code", "a"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def _assert_self_contained(text: str) -> None:
    tags = _tags(text)
    assert {t for t, _ in tags} <= TAGS
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    for tag, attrs in tags:
        if "src" in attrs:
            assert tag == "img" and attrs["src"].startswith("data:image/png;base64,")
        if "href" in attrs:
            assert not re.match(r"[a-z][a-z0-9+.-]*:|//", attrs["href"]), attrs["href"]  # relative only
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)


@pytest.fixture(scope="module")
def two_targets(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    results = export("sample:digits_cnn", ["local-onnx", "android-tflite"], out_dir=out)
    assert [r.error for r in results] == [None, None]
    return out, {r.target: r for r in results}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield b
        finally:
            b.close()


def _load(browser, path: Path) -> dict:
    """Open ``path`` from disk: what the console said, what was requested, the page's images and
    scripts, its text and a screenshot."""
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    said, requested, dialogs = [], [], []
    page.on("console", lambda m: said.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: said.append(f"pageerror: {e}"))
    page.on("request", lambda r: requested.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        seen = page.evaluate("""() => ({images: Array.from(document.images).map(i => i.complete && i.naturalWidth),
                                        scripts: document.scripts.length, h1: document.querySelector('h1').innerText,
                                        links: Array.from(document.links).map(a => a.href)})""")
        png = page.screenshot()  # the viewport: full-page capture is refused by this headless build
    finally:
        page.close()
    return {**seen, "said": said, "requested": [u for u in requested if not u.startswith("data:")],
            "dialogs": dialogs, "png": png, "url": path.resolve().as_uri()}


def _colours(png: bytes) -> int:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def test_every_bundle_has_report_html_listed_and_validate_still_passes(two_targets):
    _, results = two_targets
    for res in results.values():
        page = res.bundle / "report.html"
        text = page.read_text(encoding="utf-8")
        manifest = json.loads((res.bundle / "manifest.json").read_text())
        listed = {f["path"]: f for f in manifest["files"]}
        assert listed["report.html"]["bytes"] == page.stat().st_size
        assert listed["report.html"]["sha256"] == sha256_file(page)
        assert edgeport.validate(res.bundle).passed
        doc = json.loads((res.bundle / "report.json").read_text())
        assert "times_ms" not in doc["latency"] and "artifact_outputs" not in doc  # report.json keys unchanged
        for check in doc["checks"]:
            assert f"<td>{check['name']}</td>" in text
        _assert_self_contained(text)
        # the plots: one per output, one latency histogram per runtime run, the size bars
        runs = 1 + len([r for r in doc["runtimes"] if r.get("latency")])
        assert text.count('src="data:image/png;base64,') == len(doc["parity"]["outputs"]) + runs + 1
        assert "no plot" not in text
        assert len(res.report.latency.times_ms) == doc["latency"]["runs"] == 100
    tflite = (results["android-tflite"].bundle / "report.html").read_text()
    # NNAPI fallbacks: the ops highlighted, and the delegate table's reasons
    assert '<span class="chip off">QUANTIZE</span>' in tflite and '<span class="chip">CONV_2D</span>' in tflite
    assert "API 29 takes symmetric int8 only" in tflite and "litert-reference" in tflite


def test_a_changed_report_html_fails_validation(two_targets, tmp_path):
    _, results = two_targets
    copy = shutil.copytree(results["local-onnx"].bundle, tmp_path / "b")
    page = copy / "report.html"
    page.write_text(page.read_text().replace("PASS", "PASS!", 1))
    rep = edgeport.validate(copy)
    integrity = next(c for c in rep.checks if c.name == "integrity")
    assert not rep.passed and not integrity.passed and "report.html" in integrity.detail


def test_report_pages_load_in_chromium_with_no_errors(two_targets, browser):
    _, results = two_targets
    for res in results.values():
        seen = _load(browser, res.bundle / "report.html")
        assert seen["said"] == [] and seen["dialogs"] == []
        assert seen["requested"] == [seen["url"]]  # nothing fetched but the page itself
        assert len(seen["images"]) == (4 if res.target == "android-tflite" else 3)  # outputs, runs, size
        assert all(w and w > 100 for w in seen["images"]), seen["images"]  # every plot decoded
        assert seen["h1"].startswith(f"digits_cnn → {res.target}") and "PASS" in seen["h1"]
        assert _colours(seen["png"]) > 300  # text, tables, badges and the scatter/histogram plots


def test_the_index_links_every_target(two_targets, browser):
    out, results = two_targets
    text = (out / "index.html").read_text(encoding="utf-8")
    _assert_self_contained(text)
    hrefs = [a.get("href") for t, a in _tags(text) if t == "a"]
    for res in results.values():
        assert f"{res.bundle.name}/report.html" in hrefs and (out / res.bundle.name / "report.html").is_file()
        assert f"{res.bundle.name}.log" in hrefs
        doc = res.report.to_dict()
        assert f"agreement {doc['parity']['top1_agreement']:.4f}" in text and f"{doc['size']['ratio']:.6g}" in text
    assert text.count(">PASS<") == 2 and "2 of 2 targets passed" in text
    seen = _load(browser, out / "index.html")
    assert seen["said"] == [] and seen["requested"] == [seen["url"]] and seen["images"] == []
    assert {(out / b.name / "report.html").resolve().as_uri() for b in (r.bundle for r in results.values())} \
        <= set(seen["links"])
    assert _colours(seen["png"]) > 300  # a page holding only a word of text has ~70


def test_a_hostile_model_name_is_text_not_markup(digits, tmp_path, browser):
    src = ModelSource(name=HOSTILE, module=digits.module, example_inputs=digits.example_inputs,
                      input_names=digits.input_names, output_names=digits.output_names, task=digits.task,
                      eval_data=digits.eval_data)
    (res,) = export(src, ["local-onnx"], precision="fp32", out_dir=tmp_path / "out")
    text = (res.bundle / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in text and "<script" not in text and text.count(ESCAPED) >= 2  # <title> and <h1>
    _assert_self_contained(text)
    assert not (tmp_path / "out" / "index.html").exists()  # one target: no index
    seen = _load(browser, res.bundle / "report.html")
    assert seen["scripts"] == 0 and seen["dialogs"] == [] and seen["said"] == []
    assert seen["h1"].startswith(HOSTILE)  # shown as the text it is


def test_every_string_of_a_report_is_escaped():
    """Whatever holds the text (a check's detail, an op name, a key nobody renders by name, an
    auto candidate, a nested key), it reaches the page escaped."""
    doc = {"model": HOSTILE, "target": "local-onnx", "passed": False, "precision": "<b>",
           "checks": [{"name": HOSTILE, "passed": False, "detail": '"><img src=x onerror=alert(2)>'}],
           "parity": {"samples": 1, "runtime": HOSTILE, "outputs": [{"name": HOSTILE, "passed": True}]},
           "ops": {"used": [HOSTILE, "Conv"], "unsupported": [HOSTILE], HOSTILE: {"reason": HOSTILE}},
           "latency": {"runtime": HOSTILE, "p50_ms": 1.0, "where": HOSTILE, "backend": HOSTILE},
           "runtimes": [{"runtime": HOSTILE, "error": HOSTILE}],
           "auto": {"pick": HOSTILE, "candidates": [{"label": HOSTILE, "passed": True, "why": HOSTILE}]},
           "compression": {"steps": [{"kind": HOSTILE}]}, "new_block": {HOSTILE: [HOSTILE, {"x": HOSTILE}]}}
    text = render_report(doc, Figures(problems={f"output:{HOSTILE}": HOSTILE}))
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert text.count(ESCAPED) >= 15
    _assert_self_contained(text)
    assert 'class="pick"' in text and "no plot" in text  # the pick row is marked; the missing plot says why
    with pytest.raises(ValueError):
        figure("javascript:alert(1)", "x")


def test_without_matplotlib_the_page_says_why_each_plot_is_missing(tmp_path, monkeypatch):
    import sys

    import numpy as np

    from edgeport.data import Dataset
    from edgeport.validation.golden import Golden
    from edgeport.validation.html import write_report_html
    from edgeport.validation.report import Latency, Report, Size

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    x = np.zeros((4, 3), np.float32)
    lat = Latency("measured", "onnxruntime", "here", 1, 1.0, 1.0, 1.0, 1.0, 3, 0.1, times_ms=(1.0, 1.0, 1.0))
    report = Report("t", "m", "local-onnx", "onnx", "onnxruntime", "fp32", 0.0, Size(10, 20, 5, 1), None, None,
                    lat, None, (), artifact_outputs={"y": x})
    text = write_report_html(tmp_path, report, Golden(Dataset({"x": x}, None, ""), {"y": x}, None)).read_text()
    assert "data:image/png" not in text and text.count("matplotlib is not installed") == 2  # latency, size


def test_the_sweep_page_loads_in_chromium(tmp_path, browser):
    from edgeport.search import Auto
    from edgeport.sweep import sweep

    result = sweep("sample:digits_cnn", ["local-onnx"], out_dir=tmp_path, auto=Auto(compress=False))
    page = tmp_path / "sweep.html"
    _assert_self_contained(page.read_text())
    seen = _load(browser, page)
    assert seen["said"] == [] and seen["dialogs"] == [] and seen["scripts"] == 0
    assert seen["requested"] == [seen["url"]]
    assert seen["images"] and all(w and w > 100 for w in seen["images"])
    assert seen["h1"] == "Sweep: digits_cnn"
    assert _colours(seen["png"]) > 300
    assert result.doc["targets"][0]["pick"] in page.read_text()
