# gsprune: every target installs what it needs first (pinned in requirements.txt and apt.txt).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint bench figures clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-fairseq.txt apt.txt setup.cfg pyproject.toml
	bash scripts/install_apt.sh apt.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation -r requirements-fairseq.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(VENV)/bin/gsprune

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check gsprune scripts tests
	$(VENV)/bin/ruff format --check gsprune scripts tests

# The embedded sweeps, then one report over them: results/figures/ (runs.csv, summary.md,
# PNGs per task). Their records live apart (results/sweeps/<task>/) so that the figures
# show the sweeps' runs alone (the report would split other recipes into curves of their
# own). N:M has one natural sparsity per N:M: its cells run one by one.
SWEEPS := results/sweeps
NM_CELLS := 2:4:0.5 1:4:0.75 1:8:0.875
figures: install
	$(VENV)/bin/gsprune experiment=image results_dir=$(SWEEPS)/image
	for cell in $(NM_CELLS); do IFS=: read n m s <<< "$$cell"; \
	  $(VENV)/bin/gsprune pattern=nm pattern.N=$$n pattern.M=$$m sparsity=$$s \
	    task.finetune.epochs=1 latency.threads=1 results_dir=$(SWEEPS)/image || exit 1; done
	$(VENV)/bin/gsprune experiment=translation results_dir=$(SWEEPS)/translation
	$(VENV)/bin/gsprune experiment=speech results_dir=$(SWEEPS)/speech
	$(VENV)/bin/gsprune-report $(SWEEPS)/image/records $(SWEEPS)/translation/records \
	  $(SWEEPS)/speech/records --out results/figures

bench: install
	$(PY) scripts/bench_patterns.py
	$(PY) scripts/bench_kernels.py

clean:
	rm -rf $(VENV) build *.egg-info
