#!/usr/bin/env bash
# Set-up for the browser-tfjs target's real runtimes, safe to run again:
#   1. Debian's chromium (headless, driven by Playwright) when /usr/bin/chromium is missing;
#   2. the pinned TF.js npm packages of the runner (package-lock.json) via `npm ci`.
# Needs root (or sudo) for apt-get; works with CI=true on a fresh machine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runner="$here/edgeport/validation/runtimes/tfjs_js"

if [ ! -x /usr/bin/chromium ]; then
    echo "[setup_js] installing chromium (apt-get)"
    sudo_cmd=""
    if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -q
    $sudo_cmd apt-get install -y -q --no-install-recommends chromium fonts-liberation
else
    echo "[setup_js] chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
fi

command -v node >/dev/null || { echo "[setup_js] node is not installed (need Node >= 18)" >&2; exit 1; }
command -v npm >/dev/null || { echo "[setup_js] npm is not installed" >&2; exit 1; }

# npm ci is the reproducible install; skip it when node_modules already matches the lockfile
# (npm writes node_modules/.package-lock.json as its record of what it installed).
if [ -f "$runner/node_modules/.package-lock.json" ] && \
   [ "$runner/node_modules/.package-lock.json" -nt "$runner/package-lock.json" ] && \
   [ -f "$runner/node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm" ]; then
    echo "[setup_js] TF.js runner packages already installed"
else
    echo "[setup_js] npm ci in $runner"
    (cd "$runner" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "[setup_js] node $(node --version), TF.js runner ready"
