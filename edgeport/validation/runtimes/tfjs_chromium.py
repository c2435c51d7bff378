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
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import numpy as np

from ...errors import MissingDependencyError, RuntimeLoadError, one_line
from .base import Runtime, Session
from .tfjs_model import MAX_MODEL_JSON_BYTES, TFJSModel, open_model
from .tfjs_node import RUNNER_DIR, TEST_HANG_ENV, TFJSSessionBase, output_dtype, timeout_option

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
_TFJS = RUNNER_DIR / "node_modules" / "@tensorflow"
#: what page.html loads, and the wasm binaries the wasm backend fetches (relative to _TFJS)
_TFJS_FILES = ("tfjs-core/dist/tf-core.min.js", "tfjs-backend-cpu/dist/tf-backend-cpu.min.js",
               "tfjs-backend-wasm/dist/tf-backend-wasm.min.js", "tfjs-converter/dist/tf-converter.min.js",
               "tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm", "tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
               "tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm")
MODEL_URL = "/model/model.json"
#: a Playwright call still blocked this long after its own deadline has the browser killed under it
WATCHDOG_GRACE_S = 1.0
#: closing a browser that takes longer than this has it killed
STOP_GRACE_S = 5.0
_TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
          ".html": "text/html", ".bin": "application/octet-stream"}


def page_routes(model: TFJSModel) -> dict[str, Path | bytes]:
    """Every URL path (decoded) the page may fetch, and its file or bytes: the runner page, the
    TF.js bundles, the model.json as Python checked it, and the shards that passed the
    confinement checks. Nothing else is served."""
    routes: dict[str, Path | bytes] = {f"/runner/{n}": RUNNER_DIR / n for n in ("page.html", "page.js", "core.js")}
    routes.update({f"/tfjs/{rel}": _TFJS / rel for rel in _TFJS_FILES})
    routes[MODEL_URL] = json.dumps(model.doc).encode()  # what was checked, not a later rewrite
    routes.update({f"/model/{s.rel}": s.path for s in model.shards})
    return routes


def _make_handler(routes: dict[str, Path | bytes]) -> type[BaseHTTPRequestHandler]:
    """A handler answering GET (and HEAD) for exactly the paths in ``routes`` (a dict the session
    adds its input files to); any other path is 404, any other method 405."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeport"
        sys_version = ""

        def _target(self) -> tuple[str, Path | bytes | None]:
            host = self.headers.get("Host", "")
            if host != f"127.0.0.1:{self.server.server_address[1]}":  # no DNS-rebound names
                return "", None
            url = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
            return url, routes.get(url)

        def _answer(self, body: bool) -> None:
            url, target = self._target()
            try:
                data = target.read_bytes() if isinstance(target, Path) else target
            except OSError:
                data = None
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", _TYPES.get(PurePosixPath(url).suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            # cross-origin isolation: SharedArrayBuffer and 5 us timers instead of 100 us
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def _refuse(self) -> None:
            self.send_error(405)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every other method (POST, PUT, OPTIONS, PROPFIND...)
                return self._refuse
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


class _Browser:
    """The server, Playwright, the browser context and its page: started and stopped together."""

    def __init__(self, routes: dict[str, Path | bytes], timeout_s: float):
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
        self.crashed = self.wedged = False
        watchdog = self.watchdog(timeout_s + WATCHDOG_GRACE_S)
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
            self.wedged = self.wedged or _is_timeout(exc)
            self.stop()
            why = f"no answer within {timeout_s:g} s" if self.wedged else one_line(exc)
            raise RuntimeLoadError(f"tfjs-chromium: the browser did not start: {why}") from exc
        finally:
            watchdog.cancel()

    def processes(self) -> list[int]:
        """Ids of the browser processes started for this session: those whose command line names
        its own, freshly made profile directory."""
        marker = f"--user-data-dir={self.profile}".encode()
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if marker in (d / "cmdline").read_bytes():
                        pids.append(int(d.name))
                except OSError:  # gone meanwhile
                    continue
        return pids

    def kill(self) -> None:
        """SIGKILL this session's browser processes (a wedged browser, or what close() left)."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # already gone
                pass

    def watchdog(self, seconds: float) -> threading.Timer:
        """A started timer that kills the browser after ``seconds`` (cancel it when the call
        returns). Playwright's own deadlines are enforced by scripts in the page, so a page stuck
        in a loop would outlast them; this one is not."""
        def expire() -> None:
            self.wedged = True
            self.kill()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        return timer

    def stop(self) -> None:
        if self.wedged:  # a page that stopped answering would hold close() up: end it first
            self.kill()
        watchdog = self.watchdog(STOP_GRACE_S)  # close() of a wedged browser must not hang either
        for closer in (lambda: self.context and self.context.close(), lambda: self.pw and self.pw.stop()):
            try:
                closer()
            except Exception:  # stopping: a dead browser or driver has nothing left to close
                pass
        watchdog.cancel()
        self.kill()  # anything of it that outlived close()
        self.context = self.pw = None
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.profile, ignore_errors=True)


def _shutdown_browser(browser: _Browser, tmp: str) -> None:
    browser.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def _is_timeout(exc: BaseException) -> bool:
    return "Timeout" in type(exc).__name__ or "Timeout" in str(exc)[:200]


class TFJSChromiumSession(TFJSSessionBase):
    runtime_name = "tfjs-chromium"
    backend = "wasm"

    def __init__(self, model: TFJSModel, threads: int, timeout_s: float):
        super().__init__(model, threads, timeout_s)
        if not (_TFJS / "tfjs-backend-wasm").is_dir():
            raise MissingDependencyError("the TF.js runner's npm packages",
                                         hint=f"run scripts/setup_js.sh (npm ci in {RUNNER_DIR})")
        self._routes = page_routes(model)
        self._browser = _Browser(self._routes, self.timeout_s)
        self._finalizer = weakref.finalize(self, _shutdown_browser, self._browser, self._tmp)
        msg: dict[str, Any] = {"cmd": "load", "model": MODEL_URL, "backend": "wasm", "threads": threads,
                               "maxModelJsonBytes": MAX_MODEL_JSON_BYTES}
        if os.environ.get(TEST_HANG_ENV):  # test hook: the page stops answering at that command
            msg["testHang"] = os.environ[TEST_HANG_ENV]
        self._test_hang = msg.get("testHang")
        try:
            ans = self._call(msg)
        except BaseException:
            self._finalizer()
            raise
        self.threads = int(ans.get("threads", 1))
        self.load_ms = float(ans["loadMs"])
        self.info = {"backend": ans.get("backend"), "tfjs": ans.get("tfjs"), "simd": ans.get("simd"),
                     "backend_init_ms": ans.get("backendMs"), "browser": ans.get("browser"),
                     "browser_start_ms": self._browser.start_ms,
                     "cross_origin_isolated": ans.get("crossOriginIsolated")}

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._browser.context is None:
            raise RuntimeLoadError(f"tfjs-chromium: {msg['cmd']} failed: the browser was stopped earlier")
        if self._test_hang:
            msg = {**msg, "testHang": self._test_hang}
        page = self._browser.page
        watchdog = self._browser.watchdog(self.timeout_s + WATCHDOG_GRACE_S)
        try:
            page.evaluate("msg => window.edgeportStart(msg)", msg)  # returns at once (setTimeout)
            page.wait_for_function("() => window.edgeportJob.done === true", timeout=self.timeout_s * 1e3,
                                   polling=10)
            ans = page.evaluate("() => window.edgeportJob.result")
        except Exception as exc:
            why = "the page crashed" if self._browser.crashed else one_line(exc)
            if self._browser.wedged or _is_timeout(exc):
                why = f"no answer within {self.timeout_s:g} s (to {msg['cmd']!r})"
                self._browser.wedged = True
            self._finalizer()
            raise RuntimeLoadError(f"tfjs-chromium: {why}; the browser was stopped") from exc
        finally:
            watchdog.cancel()
        if not ans or not ans.get("ok"):
            raise RuntimeLoadError(f"tfjs-chromium: {msg['cmd']} failed: {(ans or {}).get('error', 'no answer')}")
        return ans

    def _input_ref(self, path: Path) -> dict[str, str]:
        url = f"/io/{path.name}"
        self._routes[url] = path  # served from now on; nothing else of the folder is
        return {"url": url}

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
        """Start Chromium on the runner page and load the model.json at ``path`` in it; the
        model.json and its shards are checked (:func:`open_model`) before the browser starts."""
        model = open_model(Path(path), self.name)
        return TFJSChromiumSession(model, max(1, int(threads)), timeout_option(options))
