# Two commands set everything up: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER := $(BIN)/dagster
MODULE := ml_platform.definitions
# Runs at once under `dagster dev` (backfills: one run per partition); default one per core.
MAX_CONCURRENT_RUNS ?= $(shell nproc 2>/dev/null || echo 2)
# Run events at INFO in the terminal (Dagster's console default is DEBUG).
QUIET := --config-json '{"loggers": {"console": {"config": {"log_level": "INFO"}}}}'

.PHONY: install services mlflow-server demo dev lint test test-fast bench instance docs clean

# Re-installs when the project's dependencies change. `dagster asset materialize` is superseded by
# `dg launch` in Dagster 1.13 and says so on every call (a FutureWarning, printed before any code of
# ours runs); both work and are documented (docs/operations.md). The venv's .pth file keeps that one
# message out of the user's terminal; nothing else is filtered (scripts/quiet_superseded_cli.pth).
$(BIN)/.installed: pyproject.toml setup.cfg scripts/quiet_superseded_cli.pth
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	cp scripts/quiet_superseded_cli.pth "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	touch $@

install: $(BIN)/.installed

# The tests' MLflow tracking server: the full `mlflow` (Flask, SQLAlchemy, alembic; it caps pyarrow
# below Dagster's side) in a venv of its own, so its pins never meet Dagster's. The same version as
# the `mlflow-skinny` client in pyproject.toml; re-installed only when that version changes.
MLFLOW_VERSION := 3.17.2
MLFLOW_VENV := $(VENV)-mlflow
$(MLFLOW_VENV)/.installed-$(MLFLOW_VERSION):
	rm -rf $(MLFLOW_VENV)
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet "mlflow==$(MLFLOW_VERSION)"
	touch $@

mlflow-server: $(MLFLOW_VENV)/.installed-$(MLFLOW_VERSION)

# A project-local Dagster instance (SQLite), created and migrated once, before anything runs
# concurrently: two runs racing to create a fresh schema both fail.
instance: install
	mkdir -p "$(DAGSTER_HOME)"
	test -f "$(DAGSTER_HOME)/dagster.yaml" || sed "s/@MAX_CONCURRENT_RUNS@/$(MAX_CONCURRENT_RUNS)/" \
		deploy/dagster.local.yaml > "$(DAGSTER_HOME)/dagster.yaml"
	$(DAGSTER) instance migrate > /dev/null

demo: instance
	$(BIN)/ml-platform seed-demo $(if $(SYNTHETIC_ROWS),--synthetic-rows $(SYNTHETIC_ROWS))
	@# Each day in its own run, so that Dagster records every day's check results (a single-run
	@# range records them as skipped): the UI then shows what happened.
	for day in $$($(BIN)/ml-platform demo-range --list); do \
		$(DAGSTER) asset materialize -m $(MODULE) $(QUIET) --select 'key:*/raw_data' --partition $$day || exit 1; \
	done
	$(DAGSTER) asset materialize -m $(MODULE) $(QUIET) --select 'key:*/training_data+' \
		--partition "$$($(BIN)/ml-platform demo-range --last)"
	@echo
	$(BIN)/ml-platform production --model demo_classifier
	@echo
	$(BIN)/ml-platform production --model diabetes

dev: instance
	$(DAGSTER) dev -m $(MODULE) -h 127.0.0.1 -p 3000

# PostgreSQL and Redis from Debian for the production-mode tests (installed when missing).
services:
	scripts/install_services.sh

# Test files run side by side, one per worker at a time (pytest-xdist). The whole suite waits much of
# its time on servers, daemons' ticks and runs' subprocesses: one worker more than the cores keeps them
# busy (on 2 cores, 3 workers took the suite from 31.9 to 27.4 min). The unit layer only computes: one
# worker per core.
CORES := $(shell nproc 2>/dev/null || echo 2)
TEST_WORKERS ?= $(shell echo $$(( $(CORES) + 1 )))
FAST_WORKERS ?= $(CORES)

# The linter (ruff's rules and its formatter, configured in pyproject.toml), the import rules (no
# cycle; the rules and the ML free of Dagster) and the code's shape (no function over 60 lines
# without a reason): docs/design.md. In seconds; first in both below.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest ml_platform_tests/unit/test_import_rules.py ml_platform_tests/unit/test_code_shape.py \
		-q -p no:cacheprovider

# Every layer (ml_platform_tests/unit, graph, integration), with the real services: what CI runs.
test: lint services mlflow-server
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The linter, then the unit layer alone (no servers, no runs: about a minute on 2 cores), while you work.
test-fast: lint
	$(BIN)/python -m pytest ml_platform_tests/unit -q -n $(FAST_WORKERS) $(PYTEST_ARGS)

# Benchmarks (never part of `make test`): BENCH_ARGS='--quick' for a 10k smoke run,
# BENCH_ARGS='--sizes 10000,100000,1000000' to add 1M rows. Results: bench/results/*.json.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# docs/pipelines.md from the schema's field descriptions (a unit test fails when they disagree).
docs: install
	$(BIN)/ml-platform docs

clean:
	rm -rf data .dagster_home
