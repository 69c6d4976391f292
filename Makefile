# The README's commands. `make run` and `make test` set up everything they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-install when the dependency list changes.
INSTALLED := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# torch and torchvision builds this machine keeps on disk (pip takes them without a download).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Debian packages the tests drive for real.
TEST_DEBIAN_PACKAGES := redis-server postgresql openssl chromium fonts-noto-cjk
# Test processes (pytest-xdist); the tests that share a live server run in the same one.
TEST_WORKERS ?= 2
# Browser-side test tools from npm (axe-core), reinstalled when the lock file changes.
NODE_TOOLS := node_modules/.installed-$(shell cksum package-lock.json | cut -d' ' -f1)
# The interface's compiled message catalogs (English and 简体中文).
MESSAGES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: run test screenshots install messages system-deps lint format clean

run: $(INSTALLED) $(MESSAGES)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_catalog
	@echo "Vitrine is serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

# The whole suite on the embedded SQLite, then every test that uses the database again on
# PostgreSQL, the production database (the "database" marker is set by tests/conftest.py).
test: $(INSTALLED) $(MESSAGES) system-deps $(NODE_TOOLS)
	$(PYTEST)
	DEBUG=1 bash scripts/with-postgres $(PYTEST) -m database

# The README's screenshots, taken by the browser tests.
screenshots: $(INSTALLED) $(MESSAGES) system-deps $(NODE_TOOLS)
	VITRINE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/test_browser.py \
		tests/test_rules_browser.py tests/test_analytics_browser.py

install: $(INSTALLED) $(MESSAGES)

messages: $(MESSAGES)

%.mo: %.po $(INSTALLED)
	$(PY) scripts/compile-messages

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

$(NODE_TOOLS): package.json package-lock.json
	@command -v npm >/dev/null || bash scripts/ensure-debian-packages nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	rm -f node_modules/.installed-*
	touch $@

system-deps:
	@bash scripts/ensure-debian-packages $(TEST_DEBIAN_PACKAGES)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var node_modules $(MESSAGES)
