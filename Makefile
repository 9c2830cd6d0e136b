# Two commands a new user needs: `make demo` and `make test` (README: Prerequisites, and what each costs).
# Both create and reuse .venv: the demo installs gapdiag and what it needs, the tests add the dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CORE := $(VENV)/.installed-core
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint format bench bench-quick browser docs clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || \
	  { echo "gapdiag needs Python 3.10 or newer, found '$(PYTHON)' missing or older; try: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "Could not create $(VENV): Python's venv module is missing (Debian/Ubuntu: sudo apt-get install python3-venv)."; exit 1; }

$(CORE): $(BIN)/python setup.cfg pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e .
	@touch $@

$(DEV): $(CORE)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $@

# Exit code 1 means gapdiag found the faults the demo plants: that is the demo working, so make succeeds.
demo: $(CORE)
	@$(BIN)/gapdiag demo; status=$$?; [ $$status -le 1 ] || exit $$status

# The HTML report is checked in a real headless browser: Debian's chromium. Installed here only where that
# is safe without asking (root, or sudo without a password); otherwise the browser tests skip and say why.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: no chromium and no apt-get: the browser tests will be skipped (install chromium to run them)."; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "make test: installing Debian's chromium for the browser tests (apt-get install chromium)"; \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "make test: could not install chromium: the browser tests will be skipped."; \
	elif sudo -n true 2>/dev/null; then \
	  echo "make test: installing Debian's chromium for the browser tests (sudo apt-get install chromium)"; \
	  { sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium >/dev/null; } || echo "make test: could not install chromium: the browser tests will be skipped."; \
	else \
	  echo "make test: no chromium, and installing it needs root: run 'sudo apt-get install chromium' to include the browser tests; skipping them now."; \
	fi

test: $(DEV) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(DEV)
	$(BIN)/ruff check .

format: $(DEV)
	$(BIN)/ruff format .

# docs/report-schema.md from the shipped JSON Schema, the README's demo block and the report screenshots
docs: $(DEV)
	$(BIN)/python tools/docs.py

# The full run of docs/performance.md (about 45 minutes on 2 idle cores); `make bench-quick` takes about 5.
bench: $(DEV)
	$(BIN)/python benchmarks/run.py

bench-quick: $(DEV)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) gapdiag-report .pytest_cache .ruff_cache *.egg-info
