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

.PHONY: serve test lint bench venv clean-venv

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
