# The two commands: `make serve` (main job) and `make test` (ruff + mypy + pytest).
# Each creates .venv and installs pinned versions (requirements/constraints.txt) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c requirements/constraints.txt
CORE_STAMP := $(VENV)/.core-installed
FULL_STAMP := $(VENV)/.full-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint bench venv clean-venv default-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(CORE_STAMP): pyproject.toml requirements/constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(FULL_STAMP): pyproject.toml requirements/constraints.txt | $(BIN)/python
	$(PIP) -e '.[train,dev]'
	touch $(CORE_STAMP) $@

venv: $(FULL_STAMP)

serve: $(CORE_STAMP)
	$(BIN)/returnlens serve --host $(HOST) --port $(PORT) --seed-demo

lint: $(FULL_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(FULL_STAMP)
	$(BIN)/returnlens bench

clean-venv:
	rm -rf $(VENV)

# The shipped default model: synthetic data -> default recipe (ImageNet Lite0) -> calibrated,
# parity-checked ONNX copied into the package. Needs a GPU for a sensible run time.
SYNTH_COUNT ?= 12000
default-model: $(FULL_STAMP)
	$(BIN)/returnlens synth --out datasets/generated/synth --count $(SYNTH_COUNT) --seed 7
	$(BIN)/returnlens train --config training/configs/default.yaml --model-version synth-lite0-v1
	cp runs/default/model.onnx serving/models/returnlens-default.onnx
