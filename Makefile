# IMAGIO: `make demo` runs the main job on the embedded phantom; `make test` runs the tests.
# Both create .venv and install everything from nothing (CPU-only torch, pinned).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
# installed with --no-deps: the network classes (runtime, extra "models") and nnU-Net itself
# (test-only reference for the engine's parity tests and benchmark)
NO_DEPS := dynamic-network-architectures==0.4.4 nnunetv2==2.8.1

.PHONY: all demo test test-fast test-browser web chromium bench lint clean venv phantom-figure

all: test

# torch first, alone (the CPU build; constraints.txt pins it so nothing later swaps it for a CUDA
# build), then the package, then the nnU-Net packages without their dependency trees (theirs pull
# timm -> torchvision -> CUDA torch); what they really need is in the models/test extras.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[mrml,models,test,web,cohort]"
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps $(NO_DEPS)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/imagio demo demo_out

# the suite runs on TEST_WORKERS processes (pytest-xdist), one test file per process at a time so a
# file's module fixtures are built once; 2 suits a 2-core machine (CI): each worker holds a few GiB
# when it reads a real CT, so do not raise it past the memory (about 5 GiB per worker). One
# OpenBLAS thread per worker, as the CLI sets it (imagio/cli.py: its threads spin between calls).
# The tests read and write text as UTF-8 whatever the machine's locale (PYTHONUTF8=1; stop 64's CI
# read a table under an ASCII locale); the product itself names its encoding everywhere and is run
# under an ASCII locale by Testing/test_text_encoding.py
TEST_WORKERS ?= 2
test: $(STAMP) chromium
	PYTHONUTF8=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=40 Testing

# Debian's chromium for the browser tests (Playwright drives it; no browser download). Idempotent:
# nothing happens when it is there; as root (CI) apt-get installs it, otherwise sudo -n when
# allowed, else a note (the browser tests then skip).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "apt-get could not install chromium: the browser tests will skip"; \
	elif sudo -n true 2>/dev/null; then (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "apt-get could not install chromium: the browser tests will skip"; \
	else echo "chromium missing and no root: 'apt-get install chromium' to run the browser tests"; fi

test-browser: $(STAMP) chromium
	$(BIN)/python -m pytest -q -m browser Testing

# IMAGIO Web on the digital patient: open http://127.0.0.1:$(WEB_PORT)/ (WEB_HOST=0.0.0.0 to serve
# other machines, e.g. from a container)
WEB_PORT ?= 8080
WEB_HOST ?= 127.0.0.1
web: $(STAMP)
	$(BIN)/python -m imagio.web --host $(WEB_HOST) --port $(WEB_PORT) --out web_out

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not data" Testing

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/python -m compileall -q imagio IMAGIOSegmentation IMAGIOPlanning

clean:
	rm -rf $(VENV) demo_out web_out imagio_web_out .pytest_cache

# side-by-side picture of the realistic phantom and the real chest CTA (needs ../shared/data)
phantom-figure: $(STAMP)
	$(BIN)/python docs/make_phantom_figure.py
