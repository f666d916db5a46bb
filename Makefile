# Two entry points for a fresh clone: `make demo` trains and writes a submission, `make test` tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARCH ?= basic

.PHONY: demo test lint format bench clean

$(BIN)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -e .
	touch $@

demo: $(BIN)/.installed
	$(BIN)/digit-keras fit --arch $(ARCH)
	$(BIN)/digit-keras predict --model latest

test: $(BIN)/.installed lint
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_basic.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
