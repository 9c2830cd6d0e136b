# Two commands a new user needs: `make demo` and `make test`. Both create and reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip

.PHONY: demo test lint format bench bench-quick browser clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Exit code 1 means gapdiag found the faults the demo plants: that is the demo working, so make succeeds.
demo: $(STAMP)
	@$(BIN)/gapdiag demo; status=$$?; [ $$status -le 1 ] || exit $$status

# The HTML report is checked in a real headless browser: Debian's chromium, installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	    elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	    else echo "chromium not found and cannot install it: the browser test will be skipped"; fi; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

# The full run of docs/performance.md (about 45 minutes on 2 idle cores); `make bench-quick` takes about 5.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) gapdiag-report .pytest_cache .ruff_cache *.egg-info
