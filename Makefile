# The two commands a newcomer types: `make up` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help install up down status dump-workers drill drills test test-fast test-matrix rules dashboards lint lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install Debian packages (if missing) and the locked Python packages into .venv
	@scripts/install-system.sh
	@scripts/install-python.sh

up: install ## run the whole stack on 127.0.0.1 in the foreground (Ctrl-C stops it)
	@scripts/up.sh; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 130 ] || [ $$rc -eq 143 ] || exit $$rc

down: ## stop the stack started by `make up` (from another terminal)
	@scripts/down.sh

status: ## show each process of the running stack
	@scripts/status.sh

dump-workers: ## py-spy dump of every gunicorn and Celery process of the running stack, into var/dumps/
	@scripts/dump-workers.sh

drill: install ## run one fault drill on a time-compressed stack: make drill NAME=slow-view
	@test -n "$(NAME)" || { echo "usage: make drill NAME=<drill>; names: python -m ops.drills --help"; exit 2; }
	@$(PY) -m ops.drills $(NAME)

drills: install ## run every fault drill and a healthy-load run; report under var/reports/
	@$(PY) -m ops.drills

test: install ## run the whole test suite (unit, integration with real servers, e2e), then the version matrix
	@scripts/test.sh $(ARGS)

test-fast: install ## run only the tests that start no server (not integration, not e2e), and the library's
	@scripts/test.sh -m "not integration and not e2e" $(ARGS)
	@$(PY) -m pytest -c tests/library/pytest.ini tests/library -q

test-matrix: install ## the library's version matrix: Python x Django x pins (noxfile.py; pyenv's 3.11-3.13)
	@$(VENV)/bin/nox -f noxfile.py $(ARGS)

rules: install ## regenerate ops/prometheus rules, operator, alertmanager/routes.yml and runbooks/ from ops/monitoring.yml
	@$(PY) ops/prometheus/generate.py

dashboards: install ## regenerate ops/grafana/dashboards/*.json and provisioning from ops/monitoring.yml
	@$(PY) ops/grafana/generate.py

lint: install ## ruff over the code
	@$(VENV)/bin/ruff check app tests ops bench package/src noxfile.py gunicorn.conf.py

# Resolve with Debian 12's own Python (3.11.2), the oldest the project runs on: some packages
# need more on it (redis wants async-timeout below 3.11.3), and extra pins are harmless above.
lock: ## re-resolve requirements.lock and requirements-dev.lock from pyproject.toml (needs PyPI)
	@test -x /tmp/lock-venv/bin/pip-compile || { /usr/bin/python3 -m venv /tmp/lock-venv && \
	  /tmp/lock-venv/bin/pip install -q pip-tools; }
	@/tmp/lock-venv/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	@/tmp/lock-venv/bin/pip-compile -q --extra dev --generate-hashes --strip-extras --allow-unsafe \
	  -o requirements-dev.lock pyproject.toml

clean: down ## remove var/ (database, logs, uploads) and the virtualenv
	rm -rf var $(VENV)
