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

.PHONY: all demo test test-fast bench lint clean venv

all: test

# torch first, alone (the CPU build; constraints.txt pins it so nothing later swaps it for a CUDA
# build), then the package, then the nnU-Net packages without their dependency trees (theirs pull
# timm -> torchvision -> CUDA torch); what they really need is in the models/test extras.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[mrml,models,test]"
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps $(NO_DEPS)
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
