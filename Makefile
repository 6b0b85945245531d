# Two commands for a user: `make demo` and `make test`. Both run `make setup` first, which is
# idempotent and close to a no-op once done.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow
export MLOPS_ENV ?= local
export MLOPS_PROJECT_ROOT := $(CURDIR)
# MLflow's and Evidently's usage telemetry: off for everything make starts (tests, demo, the local stack)
# unless MLOPS_TELEMETRY=on (include/mlops_core/telemetry.py says which variable each library reads).
MLOPS_TELEMETRY ?= off
ifneq ($(MLOPS_TELEMETRY),on)
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
endif

.PHONY: help setup data demo soak test test-fast test-compat lint up down status lock lock-check bench wheel clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## create .venv, install pinned deps, fetch Spark jars, initialise Airflow + MLflow (idempotent)
	@bash scripts/setup.sh

# Demo landing data: 3000 customers over 120 days from 2026-01-01, drift from 2026-04-01, 1 % bad input.
DATA_ARGS ?= --customers 3000 --days 120 --seed 7 --start 2026-01-01 --drift-from 2026-04-01 --bad-rate 0.01

data: setup ## generate demo landing files into the environment's landing root (override DATA_ARGS=...)
	@$(PY) -m mlops_core.datagen $(DATA_ARGS) --clean

demo: setup ## run the pipeline end to end on the local stack and print a summary
	@$(PY) scripts/demo.py $(DEMO_ARGS)

# The soak (issue #24, scripts/soak.py): 30 nights under Airflow's own cron and asset schedules, every fault kind
# injected twice at nights drawn from the seed, the tables the nights write compared with a clean run; report in .local/soak/.
SOAK_ARGS ?= --nights 30

soak: setup ## 30 nights unattended with faults injected, tables compared with a clean run (report: .local/soak/report.json)
	@$(PY) scripts/soak.py $(SOAK_ARGS)

# Two pytest workers (pytest-xdist): the end-to-end stacks mostly wait on the scheduler while the other worker runs
# the Spark unit tests. Each test module runs whole on one worker (tests/conftest.py); PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder

test: setup ## the whole test suite (unit, DAG integrity, end to end under the real scheduler)
	@$(PY) -m ruff check .
	@$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: setup ## the tests without the end-to-end Airflow runs and the slow ones (a few minutes)
	@$(PY) -m pytest $(PYTEST_PARALLEL) -m "not e2e and not slow"

# The jobs' Spark tests on the Spark line of the supported Databricks runtime (docs/databricks.md): a second
# environment, .local/compat, that only swaps pyspark/delta-spark and the Delta jars (scripts/compat_env.sh;
# `COMPAT=1 make setup` builds it too). Lakehouse IO, ingest (contracts, quarantine), features, training set,
# training, scoring and the drift job's metrics; the slowest repeats of what these already cover are left out
# to keep the run within CI's budget (the main run still has them). Two workers, as `make test`: one JVM alone
# left the second core mostly idle.
COMPAT_TESTS ?= tests/core/test_lakehouse.py tests/ingest/test_job.py \
	tests/features/test_materialize.py tests/features/test_training_set.py tests/training/test_train.py \
	tests/scoring/test_score_job.py tests/monitoring/test_drift_report.py
COMPAT_DESELECT ?= test_day_by_day_equals_one_range_run_and_reruns_are_idempotent or test_comments_and_new_features \
	or test_injected_drift_is_flagged_and_stable_columns_are_not or test_champion_training_reference_and_performance

test-compat: setup ## the jobs' Spark tests on the Databricks runtime's Spark line (pyspark/delta-spark 4.0)
	@bash scripts/compat_env.sh
	@.local/compat/venv/bin/python -m pytest -p tests.compat.plugin -p no:cacheprovider $(PYTEST_PARALLEL) $(COMPAT_TESTS) \
	  -k "not ($(COMPAT_DESELECT))"

lint: setup ## ruff, including Airflow's AIR rules
	@$(PY) -m ruff check .

export EVIDENTLY_PORT ?= 8000
up: setup ## start Airflow (api-server, scheduler, dag-processor, triggerer), the MLflow UI and the shared Spark Connect server on 127.0.0.1
	@$(PY) scripts/local_airflow.py up

down: ## stop what `make up` started, by pid
	@if [ -x $(PY) ]; then $(PY) scripts/local_airflow.py down; fi

status: ## which local services are running
	@$(PY) scripts/local_airflow.py status

# The Databricks task libraries are locked for the supported runtime's Python and platform, within the versions of
# requirements.txt (what the tests ran) and what the runtime must keep (runtime-constraints.txt).
DBX_LIBS := include/config/databricks

LOCKS := requirements.in:requirements.txt requirements-dev.in:requirements-dev.txt

lock: ## recompile the runtime lock, the development lock and the Databricks task-library lock (needs network)
	@for pair in $(LOCKS); do $(VENV)/bin/uv pip compile -q --python-version 3.11 $${pair%%:*} -o $${pair#*:}; done
	@$(VENV)/bin/uv pip compile --python-platform x86_64-manylinux_2_28 \
	  --python-version $$($(PY) -c 'from mlops_core.databricks.runtime import DEFAULT; print(DEFAULT.python_line)') \
	  -c requirements.txt -c $(DBX_LIBS)/runtime-constraints.txt $(DBX_LIBS)/requirements.in -o $(DBX_LIBS)/requirements.txt

lock-check: setup ## fail when requirements*.in and their locks disagree (recompiles into a temp copy; needs network)
	@tmp=$$(mktemp -d); status=0; for pair in $(LOCKS); do in=$${pair%%:*}; out=$${pair#*:}; \
	  cp $$out $$tmp/$$out; sed 's|requirements.txt|'$$tmp'/requirements.txt|' $$in > $$tmp/$$in; \
	  $(VENV)/bin/uv pip compile -q --python-version 3.11 $$tmp/$$in -o $$tmp/$$out || status=1; \
	  if ! diff <(grep -E '^[a-z0-9]' $$out) <(grep -E '^[a-z0-9]' $$tmp/$$out); then \
	    echo "$$out is out of date with $$in: run make lock" >&2; status=1; fi; \
	  done; rm -rf $$tmp; exit $$status

bench: setup ## benchmarks against same-run baselines: table on stdout, JSON under bench/results/
	@$(PY) -m bench.run

wheel: setup ## build the core library wheel (dist/) for Databricks job clusters; fails if it cannot install there
	@rm -f dist/mlops_core-*.whl
	@$(VENV)/bin/uv build --wheel --out-dir dist . && ls -1 dist/mlops_core-*.whl
	@$(PY) -m mlops_core.databricks.wheel $$(ls dist/mlops_core-*.whl)

clean: down ## remove local data, Airflow home and MLflow store (keeps .venv and jars)
	rm -rf .local/lakehouse .local/landing .local/reports .local/mlflow .local/airflow
