# Customer lifecycle pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CLM_HOME ?= $(CURDIR)/.clm
AIRFLOW_PORT ?= 8080
# Test workers: the slow tests often wait on Airflow, MLflow and Celery processes, so
# three workers keep 2 cores busy. The scheduler in tests/conftest.py keeps a module
# (or the modules sharing the scored shop) on one worker, so a shared fixture is built
# once, and starts the longest groups first.
TEST_WORKERS ?= 3
PYTEST_DIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
MLFLOW_PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast test-bench lint typecheck format lock airflow mlflow data-docs up down up-local down-local status-local bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the pinned dependencies (quick when nothing changed)

demo: setup ## Simulate a shop, run it through Airflow with weekly training, print a summary
	$(BIN)/clm demo

test: setup ## Run the test suite (ruff, mypy, the layering contract, unit, DAG integrity, end to end; not the bench smoke test)
	@scripts/system-deps
	$(BIN)/ruff check .
	@# mypy and the layering contract run beside the tests (the tests leave a core idle while
	@# they wait on services); their output follows the tests', and either failing fails.
	@mkdir -p build; ($(BIN)/mypy && $(BIN)/lint-imports --no-cache) > build/static-checks.log 2>&1 & \
	checks=$$!; $(BIN)/pytest -q $(PYTEST_DIST) -m "not bench" --durations=15; tests=$$?; \
	wait $$checks; static=$$?; echo "--- mypy and lint-imports"; cat build/static-checks.log; \
	test $$tests -eq 0 && test $$static -eq 0

test-fast: setup ## Run the tests without the slow end-to-end ones
	$(BIN)/pytest -q $(PYTEST_DIST) -m "not slow"

test-bench: setup ## Run the quick clm bench smoke test (3,000 customers, every stage; .ci/run runs it after make test)
	$(BIN)/pytest -q -m bench

lint: setup ## ruff check, ruff format --check, mypy and the layering contract (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: setup ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: ## Re-resolve requirements.in into requirements.lock
	$(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--generate-hashes requirements.in -o requirements.lock

airflow: setup ## Start Airflow (api-server, scheduler, dag-processor, triggerer); AIRFLOW_PORT=8080
	$(BIN)/clm ui airflow --port $(AIRFLOW_PORT)

mlflow: setup ## Start the MLflow UI on the pipeline's tracking store; MLFLOW_PORT=5000
	$(BIN)/clm ui mlflow --port $(MLFLOW_PORT)

up: ## Start the production topology (docker compose; needs a Docker engine)
	docker compose up -d

down: ## Stop the production topology
	docker compose down

up-local: setup ## The production topology as processes (Postgres, Redis, MLflow server, Celery Airflow)
	@scripts/system-deps
	$(BIN)/clm stack up

down-local: ## Stop the processes of make up-local (their data stays under CLM_HOME/stack)
	$(BIN)/clm stack down

status-local: ## Each process of make up-local: running or not, port, log
	$(BIN)/clm stack status

data-docs: ## Print where the Great Expectations data docs are (open it in a browser)
	@$(BIN)/python -c "from clm.core.settings import get_settings; from clm.data.validation import docs_index; print(docs_index(get_settings().gx_dir).as_uri())"

bench: setup ## clm bench at 10k, 100k and 1M customers (each stage, the cycle, the naive peer); JSON in build/
	$(BIN)/clm bench --customers 10000 --customers 100000 --customers 1000000 --json build/bench.json

clean: ## Delete CLM_HOME (all pipeline state); keeps .venv
	rm -rf $(CLM_HOME)
