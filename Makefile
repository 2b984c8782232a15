# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint format install clean bench soak compose-tool browser

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

test: install lint compose-tool browser ## lint, type-check, then the whole suite against a real Postgres
	$(BIN)/pytest

# The compose test renders docker-compose.yml with `docker-compose config` (Debian's package
# works offline). Installed when missing and we are root; otherwise that test says what to do.
compose-tool:
	@command -v docker-compose >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 \
		|| DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } \
		|| echo "warning: could not install docker-compose; the compose test will say what to do" >&2

# The console's browser tests drive Debian's Chromium (Playwright cannot download a browser
# here): install it where we can. Without it they skip, and under CI=true they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "could not install chromium: the browser tests will not pass" >&2; \
	else \
		echo "chromium is not installed (apt-get install chromium): browser tests skip" >&2; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
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

soak: install ## 3 APIs + 2 workers under load, one of each SIGKILLed (5 min; SOAK_ARGS="--minutes 30")
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
