# edgeport — set-up, tests and demo. Every target builds what it needs from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
STAMP := $(VENV)/.edgeport-installed
OUT ?= out
# make test runs the suite on this many pytest-xdist workers (a test file stays on one worker)
TEST_WORKERS ?= 2

.PHONY: all setup js demo test test-fast bench clean

all: test

# torch first (the CPU wheel: a plain 'torch' would pull GBs of CUDA), then everything else under
# the committed constraints, then onnx2tf / tensorflowjs without their stale hard pins, and onnx2torch
# without its torchvision (the registry's wheels are CUDA builds; edgeport stands in for it).
$(STAMP): requirements/constraints.txt requirements/base.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements/constraints.txt -r requirements/base.txt
	$(PIP) install -q --no-deps -c requirements/constraints.txt onnx2tf tensorflowjs onnx2torch
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) js

# Node packages for the TF.js runtimes (npm ci from the committed lockfile) and Debian's chromium.
js:
	bash scripts/setup_js.sh

demo: setup
	rm -rf $(OUT)/demo
	$(VENV)/bin/edgeport targets
	$(VENV)/bin/edgeport export sample:digits_cnn --target all -o $(OUT)/demo
	$(VENV)/bin/edgeport validate $(OUT)/demo/digits_cnn-local-onnx -q
	$(VENV)/bin/edgeport export sample:digits_cnn --target android-tflite --precision auto -o $(OUT)/demo-auto
	@echo "report: $(OUT)/demo/digits_cnn-local-onnx/report.json"
	@$(PY) -m json.tool $(OUT)/demo/digits_cnn-local-onnx/report.json | head -60

# The whole suite, real converters and runtimes, real-model tier included.
test: setup
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --durations=30 tests

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not real" tests

bench: setup
	$(PY) benchmarks/bench_onnx.py
	$(PY) benchmarks/bench_tflite.py
	$(PY) benchmarks/bench_coreml.py
	$(PY) benchmarks/bench_tfjs.py

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache
