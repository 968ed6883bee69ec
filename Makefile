# The two commands a new machine needs: `make demo` (run the stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint system-deps bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start simulator + proxy + collector + dashboard with synthetic traffic (Ctrl-C stops all).
demo: install
	$(BIN)/tokentail up --demo

## Lint, format check and types, then the whole test suite (browser, Prometheus and Redis tests need `make system-deps` first).
test: lint
	$(BIN)/python -m pytest -q

## ruff (lint + format check), then mypy (strict for the pure modules; see pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/typecheck.py

## Unit tests only (no slow, browser or Prometheus tests; Redis tests skip without redis-server).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not browser and not prometheus"

## Debian packages the browser, Prometheus and Redis tests use (needs root).
system-deps:
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium prometheus redis-server

bench: install
	$(BIN)/python bench/proxy_bench.py --telemetry
	$(BIN)/python bench/collector_bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
