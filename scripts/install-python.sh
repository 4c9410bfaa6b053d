#!/usr/bin/env bash
# Create .venv and install the locked packages (hash-checked) when the lock file changed.
set -euo pipefail
venv=${VENV:-.venv}
lock=requirements-dev.lock
# The library (package/) is installed editable on top of the locked packages, as an adopter's
# project would install it (without its dependencies: the lock already holds them).
marker="$venv/.installed-$(cat "$lock" package/pyproject.toml | sha256sum | cut -c1-16)"
[ -f "$marker" ] && exit 0
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --require-hashes -r "$lock"
"$venv/bin/python" -m pip install -q --no-deps -e package/
rm -f "$venv"/.installed-*
touch "$marker"
echo "install-python: $venv ready"
