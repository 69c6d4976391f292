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
# The tests that write to the database run a second time on PostgreSQL, the production DB.
POSTGRES_TESTS := tests/test_services.py tests/test_api_catalog.py tests/test_api_auth.py tests/test_indexing.py tests/test_admin.py \
	tests/test_commands.py tests/test_search.py tests/test_catalog_search.py

.PHONY: run test install system-deps lint format clean

run: $(INSTALLED)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_catalog
	@echo "Vitrine is serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

test: $(INSTALLED) system-deps
	$(PY) -m pytest
	DEBUG=1 bash scripts/with-postgres $(PY) -m pytest $(POSTGRES_TESTS)

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
