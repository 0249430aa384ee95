PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/dualtrack.yaml

.PHONY: run test lint bench install dev clean

$(BIN)/dualtrack: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/dualtrack
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/dualtrack

dev: $(VENV)/.dev

run: $(BIN)/dualtrack
	$(BIN)/dualtrack serve --config $(CONFIG)

test: $(VENV)/.dev
	$(BIN)/pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check adapter tests bench
	$(BIN)/ruff format --check adapter tests bench
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/storm.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/segments.py

clean:
	rm -rf $(VENV) data/*.db data/*.db-* data/*.db.lock
