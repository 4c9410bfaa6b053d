# The two commands a newcomer types: `make up` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help install up down test lint lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install Debian packages (if missing) and the locked Python packages into .venv
	@scripts/install-system.sh
	@scripts/install-python.sh

up: install ## run the whole stack on 127.0.0.1 in the foreground (Ctrl-C stops it)
	@scripts/up.sh; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 130 ] || [ $$rc -eq 143 ] || exit $$rc

down: ## stop the stack started by `make up` (from another terminal)
	@scripts/down.sh

test: install ## run the whole test suite (unit, integration with real servers, e2e)
	@scripts/test.sh $(ARGS)

lint: install ## ruff over the code
	@$(VENV)/bin/ruff check app tests ops bench

lock: ## re-resolve requirements.lock from pyproject.toml (needs the network to PyPI)
	@$(PY) -m pip install -q pip-tools && $(VENV)/bin/pip-compile -q --extra dev --generate-hashes \
	  --strip-extras --allow-unsafe -o requirements.lock pyproject.toml

clean: down ## remove var/ (database, logs, uploads) and the virtualenv
	rm -rf var $(VENV)
