# Two entry points for a fresh clone: `make demo` trains and writes a submission, `make test` tests.
# `make test` covers both Keras backends: TensorFlow in .venv, JAX in .venv-jax (no TensorFlow).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JAX_VENV ?= .venv-jax
JAX_BIN := $(JAX_VENV)/bin
PYTEST_PINS := $(shell grep -o '^pytest[a-z-]*==[0-9.]*' requirements-dev.txt)
# Test processes: the suite is mostly subprocesses and waits, so 2 cores run 2 at once; each test
# file stays in one process (its module fixtures are built once).
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile
ARCH ?= basic

.PHONY: demo test test-fast test-tf test-jax lint format bench bundle clean

$(BIN)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -e ".[tensorflow,serve,report]"
	touch $@

$(JAX_BIN)/.installed: pyproject.toml requirements-jax.txt requirements-dev.txt
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_BIN)/pip install --quiet --upgrade pip
	$(JAX_BIN)/pip install --quiet -r requirements-jax.txt $(PYTEST_PINS) -e ".[jax]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/digit-keras fit --arch $(ARCH)
	$(BIN)/digit-keras predict --model latest

test: lint test-tf test-jax

# The edit-test loop: everything but the tests marked slow (those that train through the CLI, run
# processes or build full-size networks): tiny models only, no training run.
test-fast: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow" --ignore=tests/test_jax_path.py

test-tf: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_PARALLEL) --ignore=tests/test_jax_path.py  # test-jax: without TF

# The registry, augmentation and the JAX path on the JAX backend, where TensorFlow is not installed.
test-jax: $(JAX_BIN)/.installed
	KERAS_BACKEND=jax $(JAX_BIN)/pytest $(PYTEST_PARALLEL) tests/test_models.py tests/test_augment.py tests/test_jax_path.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The model that `serve` and picture `predict` use by default, in saved_models/default/: the mean
# of three seeds of the default recipe at 20 epochs with elastic distortion and weight EMA, which
# reads handwriting that is not MNIST better (docs/results.md: "On handwriting that is not MNIST").
BUNDLE_RECIPE := --config basic-elastic-ema  # configs/recipes/basic-elastic-ema.toml
BUNDLE_SEEDS := 0 1 2
bundle: $(BIN)/.installed
	rm -rf saved_models/default-run-*
	for seed in $(BUNDLE_SEEDS); do \
		$(BIN)/digit-keras fit $(BUNDLE_RECIPE) --seed $$seed \
			--out saved_models/default-run-$$seed || exit 1; \
	done
	$(BIN)/digit-keras bundle $(BUNDLE_SEEDS:%=saved_models/default-run-%)

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_basic.py

clean:
	rm -rf $(VENV) $(JAX_VENV) .cache .pytest_cache .ruff_cache *.egg-info
