# latentshift — the one entry point. `make` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
PARAMS ?= params/demo.yaml
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup report data test test-all test-slow lint lab bench sweep study results readme docs clean

help: ## list the targets
	@echo "latentshift — make targets (PARAMS=$(PARAMS))"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-9s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv from requirements.lock and register the Jupyter kernel (quick when nothing changed)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	$(PY) -m ipykernel install --sys-prefix --name latentshift --display-name "Python (latentshift)" >/dev/null
	@touch $@
	@echo "setup done: $(VENV)"

report: setup ## run the pipeline for PARAMS (default params/demo.yaml) and render reports/<profile>/
	$(PY) -m latentshift run $(PARAMS) $(ARGS)

data: setup ## download the data file of PARAMS (data.url → data.path, verified against data.sha256)
	$(PY) -m latentshift fetch $(PARAMS) $(ARGS)

test: setup ## run the fast test suite: unit, property and one smoke pipeline run per design (minutes)
	$(PY) -m pytest -n auto --maxprocesses 4 -m "not slow" $(ARGS)

test-all: setup ## run every test, the slow ones too (studies, real cells end to end, reruns)
	$(PY) -m pytest -n auto --maxprocesses 4 $(ARGS)

test-slow: setup ## run only the slow tests (what make test-all adds to make test)
	$(PY) -m pytest -n auto --maxprocesses 4 -m slow $(ARGS)

lint: setup ## ruff check and ruff format --check over lib, tests, benchmarks and notebooks
	$(VENV)/bin/ruff check lib tests benchmarks notebooks
	$(VENV)/bin/ruff format --check lib tests benchmarks notebooks

lab: setup ## open JupyterLab on notebooks/ with the project kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

bench: setup ## run the benchmarks in benchmarks/ (side-by-side comparisons)
	$(PY) -m benchmarks $(ARGS)

sweep: setup ## dose-response sweep for PARAMS (LEVELS=1,1.25,1.5,2,3 to choose fold changes)
	$(PY) -m latentshift sweep $(PARAMS) $(if $(LEVELS),--levels $(LEVELS)) $(ARGS)

study: setup ## a study over any params keys: DESIGN=params/studies/<name>.yaml (points, nulls) for PARAMS
	$(PY) -m latentshift sweep $(PARAMS) --design $(or $(DESIGN),$(error make study needs DESIGN=params/studies/<name>.yaml)) $(ARGS)

results: setup ## record a finished run: PROFILE=demo → results/demo.json (STUDY=seeds: its study table); then make readme
	$(PY) -m latentshift results runs/$(or $(PROFILE),$(error make results needs PROFILE=<profile>))$(if $(STUDY),/$(STUDY)) $(ARGS)

readme: setup ## rewrite the README's tables and quoted numbers from results/ (ARGS=--check only compares)
	$(PY) -m latentshift readme $(ARGS)

docs: setup ## build the documentation site into site/ (mkdocs, strict: a broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean: ## remove runs/ and reports/ (keeps .venv and data/)
	rm -rf runs reports
