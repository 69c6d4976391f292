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
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: run test screenshots install system-deps lint format clean

run: $(INSTALLED)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_catalog
	@echo "Vitrine is serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

# The whole suite on the embedded SQLite, then every test that uses the database again on
# PostgreSQL, the production database (the "database" marker is set by tests/conftest.py).
test: $(INSTALLED) system-deps
	$(PYTEST)
	DEBUG=1 bash scripts/with-postgres $(PYTEST) -m database

# The README's screenshots, taken by the browser tests.
screenshots: $(INSTALLED) system-deps
	VITRINE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/test_browser.py

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
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
	rm -rf $(VENV) var
