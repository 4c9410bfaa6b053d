#!/usr/bin/env bash
# The whole suite; extra arguments go to pytest (make test ARGS="-k slow").
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
