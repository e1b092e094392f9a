# outdial: two commands on a fresh machine.
#   make demo   the daemon against the built-in fake platform
#   make test   ruff, mypy --strict and the whole pytest suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The demo needs only outdial's runtime dependencies: a quicker, smaller install.
RUNTIME = $(VENV)/.runtime

.PHONY: demo test lint typecheck pytest bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("outdial needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing outdial with its dev toolchain into $(VENV) (once; about a minute)..."
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(RUNTIME): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("outdial needs Python 3.11+") if sys.version_info < (3, 11) else None'
	@echo "make demo: installing outdial and its runtime dependencies into $(VENV) (once)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

# A dev install (make test) has the runtime dependencies too.
demo: $(if $(wildcard $(STAMP)),$(STAMP),$(RUNTIME))
	$(BIN)/outdial demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Each benchmark prints its machine, layout (pinned CPUs), command and same-run baseline.
bench: $(STAMP)
	for b in throughput latency ratelimited memory recovery scale; do $(BIN)/python bench/$$b.py || exit 1; done

soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
