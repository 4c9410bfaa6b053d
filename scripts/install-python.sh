#!/usr/bin/env bash
# Create .venv and install the locked packages (hash-checked) when the lock file changed.
set -euo pipefail
venv=${VENV:-.venv}
lock=requirements-dev.lock
marker="$venv/.installed-$(sha256sum "$lock" | sha256sum | cut -c1-16)"
[ -f "$marker" ] && exit 0
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --require-hashes -r "$lock"
rm -f "$venv"/.installed-*
touch "$marker"
echo "install-python: $venv ready"
