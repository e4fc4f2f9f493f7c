# Every target installs what it needs first (a venv in .venv), so each works on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: help install demo pipeline data test test-fast lint bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	touch $@

install: $(VENV)/.installed ## create .venv with everything (train, serve, monitor, dev)

demo: install ## the main job: run the whole loop locally on the bundled data
	mlops demo

data: install ## get the data: dvc pull, else recreate the bundled table and push it
	mlops data

pipeline: data ## dvc repro: validate, prepare, train, evaluate
	dvc repro

lint: install ## pre-commit on every file (ruff, formatting, file hygiene), offline
	pre-commit run --all-files --show-diff-on-failure

test: install ## all tests, the slow end-to-end ones included
	pytest

test-fast: install ## unit tests only (skips the slow end-to-end tests)
	pytest -m "not slow"

bench: install ## benchmarks: pipeline timings and Lightning vs plain PyTorch
	python benchmarks/pipeline.py

clean: ## remove generated outputs (keeps .venv, data and the DVC cache)
	rm -rf artifacts eval reports mlflow.db mlartifacts .pytest_cache
