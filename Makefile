# Dompet developer entry points.  Every target that needs the virtualenv runs
# scripts/bootstrap.sh first (idempotent: installs uv if needed, `uv sync --frozen`).
#
#   make run    HOST=0.0.0.0 PORT=8000   migrate the database, then serve API + worker
#   make test   PYTEST_ARGS="-k ledger"  lint, then the test suite
#   make lint | fmt | bench | clean | distclean
#
# Variables given on the command line (e.g. HOST, PORT) are exported to the
# recipes' environment by make, so `dompet serve` sees them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN := .venv/bin
# Only lint directories that exist (bench/ may not yet).
LINT_DIRS := $(wildcard src tests bench)
PYTEST_ARGS ?=
ARGS ?=

.PHONY: help bootstrap run test lint fmt bench clean distclean example-data

help:
	@echo "targets: run test lint fmt bench clean distclean bootstrap example-data"

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	$(BIN)/dompet migrate
	$(BIN)/dompet serve

# Load example_data/ into DATABASE_URL (migrated first); FORCE=1 adds to a non-empty database.
example-data: bootstrap
	$(BIN)/dompet migrate
	$(BIN)/dompet example-data load example_data $(if $(FORCE),--force,)

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: bootstrap
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy $(LINT_DIRS)

fmt: bootstrap
	$(BIN)/ruff check --fix $(LINT_DIRS)
	$(BIN)/ruff format $(LINT_DIRS)

bench: bootstrap
	@if [ -d bench ]; then \
		$(BIN)/python -m bench $(ARGS); \
	else \
		echo "bench: no bench/ package yet (placeholder)"; \
	fi

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	find . -path ./.venv -prune -o -path ./.venv-tools -prune -o -path ./.git -prune -o \
		-type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-tools
