# Two commands matter: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

DAGSTER_VENV := .venv-dagster
DAGSTER_STAMP := $(DAGSTER_VENV)/.installed

.PHONY: venv venv-dagster services lint test test-fast demo sandbox bench soak lock clean

venv: $(STAMP)

## The orchestrator's own virtualenv (Dagster + dagster-meltano; ~45 s): the scale-out tests use it.
venv-dagster: $(DAGSTER_STAMP)

$(DAGSTER_STAMP): orchestrate/dagster/requirements.txt
	@test -x $(DAGSTER_VENV)/bin/python || $(PYTHON) -m venv $(DAGSTER_VENV)
	$(DAGSTER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r orchestrate/dagster/requirements.txt
	@touch $(DAGSTER_STAMP)

## PostgreSQL server binaries for the scale-out tests (they start their own throwaway server):
## Debian's package, installed only when missing (needs root; the CI machine is).
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

$(STAMP): requirements/dev.txt requirements/constraints.txt sandbox/pyproject.toml tap-sfmc-de/pyproject.toml target-insider-one/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -c requirements/constraints.txt -r requirements/dev.txt
	@touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The whole suite: lint, unit tests, sandbox tests, end-to-end tests (incl. scale_out), on two
## workers: most e2e tests wait on subprocesses and sandbox latency, so two pay even on 2 cores.
## The tests sharing the repository's .meltano/ stay on one worker (a scheduler hook in conftest.py).
test: lint venv-dagster services
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## Unit tests only (no meltano, no subprocesses).
test-fast: venv
	$(BIN)/python -m pytest -m "not e2e"

## Start the sandbox, run the pipeline twice through Meltano, show what arrived.
demo: venv
	$(BIN)/python scripts/demo.py

## Run the sandbox in the foreground (Ctrl-C to stop).
sandbox: venv
	$(BIN)/sandbox serve

## Issue 10's figures in one table: bounds, anchors, each plugin, pipe, `meltano run`, requests,
## latency, peak RSS (125,000 and 1,000,000 rows; under 10 min). Other benchmarks: README.
bench: venv
	$(BIN)/python -m benchmarks.bench

## Many runs under live changes, faults and kills, then a check that no row was lost (~5 min).
soak: venv
	$(BIN)/python -m benchmarks.soak

## Re-pin every dependency from a fresh resolve (needs PyPI).
lock:
	rm -rf /tmp/lock-venv && $(PYTHON) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet -r requirements/dev.txt
	/tmp/lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements/constraints.txt

clean:
	rm -rf $(VENV) $(DAGSTER_VENV) .meltano output .pytest_cache .ruff_cache
