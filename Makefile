# gsprune: every target installs what it needs first (pinned in requirements.txt and apt.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint bench figures clean

install: $(STAMP)

$(STAMP): requirements.txt apt.txt setup.cfg pyproject.toml
	bash scripts/install_apt.sh apt.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(VENV)/bin/gsprune

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check gsprune scripts tests
	$(VENV)/bin/ruff format --check gsprune scripts tests

bench: install
	$(PY) scripts/bench_patterns.py
	$(PY) scripts/bench_kernels.py

clean:
	rm -rf $(VENV) build *.egg-info
