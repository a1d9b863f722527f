# Switchboard: `make run` starts the whole pipeline, `make test` runs lint and the suite.
PYTHON ?= python3
VENV ?= .venv
# The suite runs in parallel, a file to a worker (a file's tests may build on each other).
# Most end-to-end time is spent waiting on real processes, so more workers than the 2 cores.
TEST_WORKERS ?= 4
PYTEST = $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit test-embedded test-rabbitmq bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The whole pipeline (web, worker, worker_bulk, beat; flower too when a network broker is set).
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

## Lint, types, then the suite: real Postgres + Redis + a real worker when reachable, else embedded.
test: lint typecheck
	./scripts/ensure_browser
	$(PYTEST)

## The suite once more on the embedded backends (SQLite + the sqla broker), as CI also does.
test-embedded: $(STAMP)
	SWITCHBOARD_TEST_BACKEND=embedded $(PYTEST)

## The end-to-end suite once more with RabbitMQ as the broker (a virtual host per run).
test-rabbitmq: $(STAMP)
	SWITCHBOARD_TEST_BACKEND=postgres SWITCHBOARD_TEST_BROKER=amqp $(PYTEST) tests/e2e

unit: $(STAMP)
	$(PYTEST) tests/unit

## Every benchmark, each figure beside its baseline (about 90 minutes on 2 CPUs: mostly the soak).
bench: $(STAMP)
	$(BIN)/python scripts/bench/run.py --runs 3
	$(BIN)/python scripts/bench/dispatch.py
	$(BIN)/python scripts/bench/embedded.py
	$(BIN)/python scripts/bench/growth.py
	$(BIN)/python scripts/bench/crm.py
	$(BIN)/python scripts/bench/soak.py
	$(BIN)/python scripts/bench/console.py
	$(BIN)/python scripts/bench/templates.py
	$(BIN)/python scripts/bench/audit.py
	$(BIN)/python scripts/bench/guard.py
	$(BIN)/python scripts/bench/campaigns.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
