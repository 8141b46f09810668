# IMAGIO: `make demo` runs the main job on the embedded phantom; `make test` runs the tests.
# Both create .venv and install everything from nothing (CPU-only torch, pinned).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: all demo test test-fast bench lint clean venv

all: test

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[mrml,test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/imagio demo demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q Testing

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not data" Testing

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/python -m compileall -q imagio IMAGIOSegmentation IMAGIOPlanning

clean:
	rm -rf $(VENV) demo_out .pytest_cache
