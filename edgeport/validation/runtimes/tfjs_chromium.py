"""Real TF.js in real headless Chromium (``tfjs-chromium``), wasm backend, driven by Playwright.

Debian's ``/usr/bin/chromium`` (Playwright's own browser download does not work offline) is
started once per session with a fresh profile directory. A small HTTP server on 127.0.0.1 serves
the runner page, TF.js from the runner's node_modules, the model and the input files, with
COOP/COEP headers so the page is cross-origin isolated (fine-grained ``performance.now``). The page
runs the same JS core as the Node runner. Every command has a deadline (``timeout_s``); a hung or
crashed page is a :class:`RuntimeLoadError`.
"""
from __future__ import annotations

import base64
import shutil
import tempfile
import threading
import time
import weakref
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, RuntimeLoadError, one_line
from .base import Runtime, Session
from .tfjs_node import DEFAULT_TIMEOUT_S, RUNNER_DIR, TFJSSessionBase, find_model_json, output_dtype

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
_RUNNER_FILES = frozenset({"page.html", "page.js", "core.js"})
_TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
          ".html": "text/html", ".bin": "application/octet-stream"}


def _make_handler(routes: dict[str, Path]) -> type[SimpleHTTPRequestHandler]:
    """A handler serving ``/<prefix>/<relative path>`` from ``routes[prefix]`` and nothing else."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = self.path.split("?", 1)[0].lstrip("/").split("/", 1)
            root = routes.get(parts[0]) if len(parts) == 2 else None
            if root is None or (parts[0] == "runner" and parts[1] not in _RUNNER_FILES):
                self.send_error(404)
                return
            target = (root / parts[1]).resolve()
            if not target.is_file() or not target.is_relative_to(root.resolve()):
                self.send_error(404)
                return
            body = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", _TYPES.get(target.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            # cross-origin isolation: SharedArrayBuffer and 5 us timers instead of 100 us
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


class _Browser:
    """The server, Playwright, the browser context and its page: started and stopped together."""

    def __init__(self, routes: dict[str, Path], timeout_s: float):
        if not CHROMIUM.is_file():
            raise MissingDependencyError("chromium", hint="run scripts/setup_js.sh (apt-get install chromium)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise MissingDependencyError("playwright", extra="tfjs") from exc
        t0 = time.perf_counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(routes))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.profile = tempfile.mkdtemp(prefix="edgeport-chromium-")
        self.pw = self.context = None
        self.crashed = False
        try:
            self.pw = sync_playwright().start()
            self.context = self.pw.chromium.launch_persistent_context(
                self.profile, executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS),
                timeout=timeout_s * 1e3)
            self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
            self.page.on("crash", lambda *_: setattr(self, "crashed", True))
            self.page.goto(f"{self.base}/runner/page.html", timeout=timeout_s * 1e3)
            self.page.wait_for_function("() => window.edgeportReady === true", timeout=timeout_s * 1e3)
            self.start_ms = (time.perf_counter() - t0) * 1e3
        except Exception as exc:
            self.stop()
            raise RuntimeLoadError(f"tfjs-chromium: the browser did not start: {one_line(exc)}") from exc

    def stop(self) -> None:
        for closer in (lambda: self.context and self.context.close(), lambda: self.pw and self.pw.stop()):
            try:
                closer()
            except Exception:  # stopping: a dead browser or driver has nothing left to close
                pass
        self.context = self.pw = None
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.profile, ignore_errors=True)


def _shutdown_browser(browser: _Browser, tmp: str) -> None:
    browser.stop()
    shutil.rmtree(tmp, ignore_errors=True)


class TFJSChromiumSession(TFJSSessionBase):
    runtime_name = "tfjs-chromium"
    backend = "wasm"

    def __init__(self, model_json: Path, threads: int, timeout_s: float):
        super().__init__(model_json, threads, timeout_s)
        if not (RUNNER_DIR / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir():
            raise MissingDependencyError("the TF.js runner's npm packages",
                                         hint=f"run scripts/setup_js.sh (npm ci in {RUNNER_DIR})")
        routes = {"runner": RUNNER_DIR, "tfjs": RUNNER_DIR / "node_modules" / "@tensorflow",
                  "model": model_json.parent, "io": Path(self._tmp)}
        self._browser = _Browser(routes, self.timeout_s)
        self._finalizer = weakref.finalize(self, _shutdown_browser, self._browser, self._tmp)
        try:
            ans = self._call({"cmd": "load", "model": f"/model/{model_json.name}", "backend": "wasm",
                              "threads": threads})
        except Exception:
            self._finalizer()
            raise
        self.threads = int(ans.get("threads", 1))
        self.load_ms = float(ans["loadMs"])
        self.info = {"backend": ans.get("backend"), "tfjs": ans.get("tfjs"), "simd": ans.get("simd"),
                     "backend_init_ms": ans.get("backendMs"), "browser": ans.get("browser"),
                     "browser_start_ms": self._browser.start_ms,
                     "cross_origin_isolated": ans.get("crossOriginIsolated")}

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        page = self._browser.page
        try:
            page.evaluate("msg => window.edgeportStart(msg)", msg)
            page.wait_for_function("() => window.edgeportJob.done === true", timeout=self.timeout_s * 1e3,
                                   polling=10)
            ans = page.evaluate("() => window.edgeportJob.result")
        except Exception as exc:
            why = "the page crashed" if self._browser.crashed else one_line(exc)
            if "Timeout" in type(exc).__name__ or "Timeout" in str(exc)[:200]:
                why = f"no answer within {self.timeout_s:g} s"
            self._finalizer()
            raise RuntimeLoadError(f"tfjs-chromium: {msg['cmd']} failed: {why}; the browser was stopped") from exc
        if not ans or not ans.get("ok"):
            raise RuntimeLoadError(f"tfjs-chromium: {msg['cmd']} failed: {(ans or {}).get('error', 'no answer')}")
        return ans

    def _input_ref(self, path: Path) -> dict[str, str]:
        return {"url": f"/io/{path.name}"}

    def _output_array(self, out: dict[str, Any]) -> np.ndarray:
        return np.frombuffer(base64.b64decode(out["b64"]), dtype=output_dtype(out["dtype"])).copy()

    def where(self) -> str:
        simd = "SIMD, " if self.info.get("simd") else ""
        return (f"this host, TF.js {self.info.get('tfjs')} wasm backend ({simd}{self.threads} thread(s)) "
                f"in headless {self.info.get('browser')}")

    def close(self) -> None:
        self._finalizer()


class TFJSChromiumRuntime(Runtime):
    """TF.js graph models in a real headless Chromium page, wasm backend."""

    name = "tfjs-chromium"
    formats = ("tfjs",)

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        """Start Chromium on the runner page and load the model.json at ``path`` in it."""
        model_json = find_model_json(Path(path))
        timeout = float(options.get("timeout_s") or DEFAULT_TIMEOUT_S)
        return TFJSChromiumSession(model_json, max(1, int(threads)), timeout)
