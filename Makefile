# Two commands (README): `make grade` sets everything up and grades the sample class;
# `make test` runs the test suite. Both are idempotent: a second run reuses the venv and the data.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GRADER_CACHE_DIR ?= $(CURDIR)/.cache/grader

.PHONY: setup system-deps data grade test test-fast lint clean

# bubblewrap: the sandbox; chromium + poppler-utils: the tests that look at reports as a person would;
# chromium-driver: the tests that drive `grader serve` in Chromium (Selenium)
SYSTEM_PACKAGES := bubblewrap:bwrap chromium:chromium chromium-driver:chromedriver poppler-utils:pdftoppm

system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  command -v $${entry#*:} >/dev/null 2>&1 || missing="$$missing $${entry%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y --no-install-recommends $$missing >/dev/null \
	    || { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y --no-install-recommends $$missing >/dev/null; } \
	    || echo "WARNING: could not install$$missing; see README 'Install'"; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: system-deps $(STAMP)

data: setup
	$(BIN)/grader data

grade: data
	$(BIN)/grader grade submissions/ --rubric rubric/hw4.yaml --out reports/

test: setup
	$(BIN)/python -m pytest

# no notebook runs: the unit tests, in parallel (under a minute on 2 cores); `make test` is what CI runs
test-fast: setup
	$(BIN)/python -m pytest -m 'not slow' -n 2 -q

lint: setup
	$(BIN)/ruff check grader tests bench
	$(BIN)/mypy

clean:
	rm -rf reports/ .cache/ .pytest_cache/ .mypy_cache/ .ruff_cache/
