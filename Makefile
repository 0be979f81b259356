# `make up` runs Busymate, `make test` proves it; both set up everything they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PG_PACKAGES := postgresql-15 postgresql-15-pgtap postgresql-15-cron postgresql-15-partman \
	postgresql-15-wal2json libtap-parser-sourcehandler-pgtap-perl
# One file each package installs, so a check needs no package manager.
PG_FILES := /usr/lib/postgresql/15/bin/initdb /usr/share/postgresql/15/extension/pgtap.control \
	/usr/lib/postgresql/15/lib/pg_cron.so /usr/share/postgresql/15/extension/pg_partman.control \
	/usr/lib/postgresql/15/lib/wal2json.so /usr/bin/pg_prove
TEST_PACKAGES := chromium curl
TEST_FILES := /usr/bin/chromium /usr/bin/curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# A working CPython 3.13: a plain python3.13 that runs, else pyenv's, else any under ~/.pyenv.
define find_python
for c in "$${PYTHON:-}" "$$(command -v python3.13 2>/dev/null)" \
	"$$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3" \
	$$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3 /usr/local/bin/python3.13 2>/dev/null); do \
	[ -n "$$c" ] && [ -x "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
		>/dev/null 2>&1 && { echo "$$c"; exit 0; }; \
done; exit 1
endef

.PHONY: help up test lint pytest bench sysdeps testdeps venv clean typecheck-tree dashboard
help:
	@echo "make up     start Busymate (installs what is missing first)"
	@echo "make test   run every test: lint, pytest and the pgTAP files"
	@echo "make lint   ruff, mypy and sqlfluff"
	@echo "make bench  run the benchmarks in bench/"

sysdeps:
	@missing=""; for f in $(PG_FILES); do [ -e "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing PostgreSQL 15 and its extensions (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(PG_PACKAGES) \
			>/dev/null || { echo "error: could not install $(PG_PACKAGES); install them and run make again" >&2; exit 1; }; \
	fi

# What the end-to-end tests drive through the proxy: curl and headless Chromium.
testdeps:
	@missing=""; for f in $(TEST_FILES); do [ -e "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing $(TEST_PACKAGES) for the end-to-end tests (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) \
			>/dev/null || { echo "error: could not install $(TEST_PACKAGES); install them and run make again" >&2; exit 1; }; \
	fi

$(BIN)/python:
	@py=$$($(find_python)) || { echo "error: CPython 3.13 not found; install it (pyenv install 3.13) or set PYTHON=/path/to/python3.13" >&2; exit 1; }; \
	echo "Building $(VENV) with $$py"; "$$py" -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# The dashboard's static files (dashboard/dist), rebuilt when its lockfile or sources are newer than the build.
DASHBOARD_SOURCES := $(wildcard dashboard/package.json dashboard/package-lock.json dashboard/index.html \
	dashboard/vite.config.ts dashboard/tsconfig.json) $(shell find dashboard/src dashboard/public -type f 2>/dev/null)

dashboard:
	@if [ ! -f dashboard/package.json ]; then echo "dashboard/package.json is missing: not building the dashboard"; \
	else $(MAKE) --no-print-directory dashboard/dist/index.html; fi

dashboard/dist/index.html: $(DASHBOARD_SOURCES)
	@command -v npm >/dev/null || { echo "error: npm (Node 20) is needed to build dashboard/; install it" >&2; exit 1; }
	cd dashboard && npm ci --no-audit --no-fund && npm run build
	@touch $@

up: sysdeps venv dashboard
	$(BIN)/busymate up

# mypy cannot follow setuptools' package-dir mapping (and skips symlinks), so it reads a tree of hard
# links shaped like the install; its messages name build/typecheck/busymate/<folder>/<file>.
TYPECHECK := build/typecheck
typecheck-tree:
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	@cp -al busymate $(TYPECHECK)/busymate
	@for d in stack gateway functions proxy cli; do cp -al $$d $(TYPECHECK)/busymate/$$d; done
	@find $(TYPECHECK) -name __pycache__ -prune -exec rm -rf {} +

lint: venv typecheck-tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy $(TYPECHECK)/busymate
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy tests
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy bench  # apart: bench/realtime.py would shadow the realtime package
	$(BIN)/sqlfluff lint --processes 2 sql supabase

pytest: sysdeps testdeps venv dashboard
	$(BIN)/pytest

test: sysdeps venv lint pytest

bench: sysdeps testdeps venv
	@for b in bench/*.py; do echo "# $$b"; $(BIN)/python -P $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
