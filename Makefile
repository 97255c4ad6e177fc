# Two commands on a fresh machine:  make up  (run the app)  and  make test  (run the tests).
# Each creates .venv and installs what it needs by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_DATA := $(abspath ../shared/datasets)

ifeq ($(origin INITLAB_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export INITLAB_DATA_DIR := $(SHARED_DATA)
endif
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv up test system-deps

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "initlab needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

up: venv
	$(VENV)/bin/initlab up

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads
# a browser) and docker-compose to validate docker-compose.yml (no engine needed).
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing:$$missing -- the tests that need them will be skipped"; fi; fi

PYTEST_ARGS ?= -n 3 --dist loadfile

# The tests run TensorFlow's oneDNN kernels, as the workers do (INITLAB_ONEDNN); with them off,
# Eigen's batched matmul takes another kernel for one run than for a group's small layers, so a
# fused normalized net drifts from its runs alone (bench/RESULTS.md, 2026-12-01 AMD section).
test: venv system-deps
	TF_ENABLE_ONEDNN_OPTS=$${TF_ENABLE_ONEDNN_OPTS:-1} $(PY) -m pytest $(PYTEST_ARGS)
