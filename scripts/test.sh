#!/usr/bin/env bash
# The whole suite: the demo project's tests, the library's own tests on their own settings
# (tests/library), then the library's version matrix (noxfile.py). With arguments, only the
# demo project's pytest runs, with them (make test ARGS="-k slow").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest --durations=40  # the slowest tests, to keep the suite inside its time budget
.venv/bin/python -m pytest -c tests/library/pytest.ini tests/library
exec .venv/bin/nox -f noxfile.py
