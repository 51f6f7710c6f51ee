# soilbook — the two set-up commands are `make book` and `make test` (see README).
# Both create the virtual environment in $(VENV) on first use and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.soilbook-installed
PROFILE ?= quick

.PHONY: install book test test-fast lint format notebooks bench clean help

help:
	@echo "make book      execute the notebooks (quick profile) and build the HTML book in _build/html"
	@echo "make test      unit tests, notebook smoke runs and a book build with warnings as errors"
	@echo "make test-fast unit tests only (no notebook execution)"
	@echo "make lint      ruff (lint + format check), the layer contract (import-linter), notebook checks"
	@echo "make bench     print the speed figures (dense maps, training)"

$(STAMP): pyproject.toml environment.yml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	awk '/- pip:/{f=1;next} f && /^ *- /{sub(/^ *- /,""); print}' environment.yml > $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (soilbook)" > /dev/null
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/soilbook book --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -ra --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests/test_structure.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_maps.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf _build
