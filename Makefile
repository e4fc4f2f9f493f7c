# Every target installs what it needs first (a venv in .venv), so each works on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: help install install-dev cml demo pipeline data test test-fast lint bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Two installs: what a forker runs (train, serve, monitor), and the template's own tooling on top of it
# (linters, act, kubectl, test servers, KServe). Installing dev marks the lean one done too: it is a superset.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e ".[train,serve,monitor]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed ## create .venv with what training, serving and monitoring need
install-dev: $(VENV)/.installed-dev ## install + the template's tooling: tests, linters, act, kubectl, KServe

# The real CML CLI for the workflow tests (tests/template/github run it against a local GitHub API test server), the
# version the PR workflow uses. `npm ci` from tools/cml/package-lock.json: every tarball, CML's own included,
# must match the sha512 `integrity` recorded there, and no install scripts run. A vendored `npm pack`
# tarball (CML_TGZ; ../shared/vendor/ in this project's own CI, whose registry lacks @dvcorg/cml) is first
# added to npm's cache, where `npm ci` finds it by that same integrity: a tarball that differs is refused,
# as a registry download that differs would be. When it cannot be installed, make goes on and the CML tests
# fail saying so: they never pass without it.
CML_VERSION := 0.20.6
CML_TGZ ?= $(wildcard ../shared/vendor/dvcorg-cml-$(CML_VERSION).tgz)
CML_LOCK := tools/cml/package.json tools/cml/package-lock.json
CML := $(abspath $(VENV))/cml/node_modules/.bin/cml
export CML_BIN := $(CML)

$(CML): $(CML_LOCK)
	@rm -rf $(VENV)/cml && mkdir -p $(VENV)/cml && cp $(CML_LOCK) $(VENV)/cml/ && cd $(VENV)/cml && \
	  { $(if $(CML_TGZ),npm cache add $(abspath $(CML_TGZ)) &&) \
	    npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null && ./node_modules/.bin/cml --version; } \
	  || echo "WARNING: could not install CML $(CML_VERSION) from $(lastword $(CML_LOCK)) (needs npm); the tests that run it skip, or fail with MLOPS_REQUIRE_TOOLS=1"

cml: $(CML) ## the real CML CLI for the workflow tests (into .venv/cml)

demo: install ## the main job: run the whole loop locally on the bundled data
	mlops demo

data: install ## get the data: dvc pull, else recreate the bundled table and push it
	mlops data

pipeline: data ## dvc repro: validate, prepare, train, baselines, evaluate
	dvc repro

lint: install-dev ## pre-commit on every file (ruff, formatting, file hygiene), offline
	pre-commit run --all-files --show-diff-on-failure

test: install-dev $(CML) ## all tests, the slow end-to-end ones included
	pytest

test-fast: install-dev ## unit tests only (skips the slow end-to-end tests)
	pytest -m "not slow"

bench: install-dev ## benchmarks: pipeline timings and Lightning vs plain PyTorch
	python benchmarks/pipeline.py

.PHONY: bench-stages bench-threads
bench-stages: install-dev ## benchmark: each stage's time and peak RSS at 10k/100k/1M rows (params.large.yaml), beside BASE (default main)
	python benchmarks/stages.py --baseline $(or $(BASE),main)

bench-threads: install-dev ## benchmark: training 100k rows, torch's default threads vs train.threads auto, alone and beside a busy job
	python benchmarks/train_threads.py

clean: ## remove generated outputs (keeps .venv, data and the DVC cache)
	rm -rf artifacts eval reports mlflow.db mlartifacts .pytest_cache

pr-report: pipeline ## the PR comment, locally: reports/pr/report.md + PNGs for the working tree vs BASE (default main)
	mlops report --base $(or $(BASE),main)

.PHONY: drift retrain-pr bench-drift

drift: install ## drift check: recent inference log vs the training split (reports/drift/)
	mlops drift

retrain-pr: install ## on drift: new data snapshot, branch retrain/..., open or update the one PR
	mlops retrain-pr

bench-drift: install-dev ## benchmark: drift on 1M log rows x 30 features against a 100k reference
	python benchmarks/drift.py

.PHONY: promote archive serve stop image bench-serve

promote: install ## register the reviewed model (md5 vs dvc.lock), apply the gates, move the champion alias
	mlops promote

archive: install ## model_store/<model>.mar of the registry's champion (refused unless the model on disk is it: run `make promote` first)
	mlops archive

serve: archive ## start TorchServe on 127.0.0.1 (token auth on); `make stop` stops it
	mlops serve start

stop: install ## stop the local TorchServe and free its ports
	mlops serve stop

ENGINE ?= docker
image: archive ## the serving image: docker build of the Dockerfile with the archived model (ENGINE=podman for podman)
	model=$$(python -c "from mlops.config.params import load_params; print(load_params().section('serve')['model_name'])"); \
	version=$$(python -c "import json; print(json.load(open('model_store/release.json'))['version'])"); \
	$(ENGINE) build --build-arg MODEL_NAME=$$model --build-arg MODEL_VERSION=$$version \
	  --build-arg GIT_SHA=$$(git rev-parse HEAD) --build-arg MAX_REQUEST_SIZE=$$(python -m serve.settings max-request-size) \
	  -t $$model:$$(mlops image-tag --version $$version --sha $$(git rev-parse HEAD)) .

# wrk (the load generator): installed with apt-get when we are root on Debian/Ubuntu (as .ci/run does),
# else the one command to install it is printed and the target stops
bench-serve: install-dev ## benchmark: TorchServe vs the KServe runtime vs FastAPI vs in-process, wrk at c=1/8/32, 1- and 64-row requests (installs wrk)
	@command -v wrk >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "bench-serve: install-deving wrk: apt-get install wrk"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	  else \
	    if command -v apt-get >/dev/null; then how="sudo apt-get install -y wrk"; \
	    elif command -v brew >/dev/null; then how="brew install wrk"; \
	    else how="your package manager's wrk package (https://github.com/wg/wrk)"; fi; \
	    echo "bench-serve needs wrk, the HTTP load generator; install it with: $$how" >&2; exit 1; \
	  fi; }
	python benchmarks/serve.py
