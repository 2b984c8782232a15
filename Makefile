# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint format install clean bench

$(BIN)/uv:
	$(PYTHON) -c 'import sys; sys.exit("partnergate needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --frozen --inexact --python $(BIN)/python
	@touch $@

install: $(VENV)/.installed

run: install ## start Postgres (embedded unless DATABASE_URL), the sandbox, the API and the worker
	$(BIN)/partnergate dev

test: install lint ## lint, type-check, then the whole suite against a real Postgres
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/access.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/imports.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
