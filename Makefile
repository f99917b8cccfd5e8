# convlib: `make dashboard` serves the dashboard, `make test` runs every test, `make lab` opens
# JupyterLab. Each target installs what it needs into .venv/ first and is safe to repeat.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
SAMPLE := data/sample/messages.parquet
HOST ?= 127.0.0.1
PORT ?= 8866

.PHONY: install sample test lint dashboard lab bench report clean

install: $(STAMP)

# Reinstall when the dependency pins change. uv compiles bytecode: PYTHONDONTWRITEBYTECODE is set
# on these machines, and without .pyc files every kernel pays 1-1.5 s more for imports.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(PY) --compile-bytecode -e '.[test]'
	touch $(STAMP)

sample: $(SAMPLE)

$(SAMPLE): | $(STAMP)
	$(BIN)/convlib sample-data -o data/sample

lint: $(STAMP)
	$(BIN)/ruff check convlib tests benchmarks
	$(BIN)/ruff format --check convlib tests benchmarks

test: $(STAMP) $(SAMPLE) lint
	$(BIN)/pytest

dashboard: $(STAMP) $(SAMPLE)
	$(BIN)/convlib dashboard --host $(HOST) --port $(PORT)

lab: $(STAMP) $(SAMPLE)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=$(HOST) --no-browser --allow-root

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) data/sample data/bench reports test-artifacts .pytest_cache .ruff_cache
