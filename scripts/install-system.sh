#!/usr/bin/env bash
# Install the Debian packages the stack and its tests run on, when any is missing.
# Idempotent and quick when everything is there (no apt-get update then).
set -euo pipefail

packages=(
  python3-venv            # the project's virtualenv
  redis-server            # Celery broker
  prometheus              # rules engine (and promtool)
  prometheus-alertmanager # routing (and amtool)
  prometheus-redis-exporter
  rabbitmq-server         # the second broker the queue-length tests cover
  wrk                     # load for drills and benchmarks
  procps iproute2         # ps/pkill and ss (listen backlog) for runbooks and tests
  postgresql              # the library's database metrics on a real PostgreSQL (tests/library/test_db.py)
  util-linux              # runuser: the test server runs as the postgres user, never as root
  nginx                   # the buffering proxy in front of both web tiers (ops/nginx/)
  prometheus-nginx-exporter # nginx's stub_status as metrics (job nginx)
  mtail                   # nginx's access log as metrics (job nginx-log, ops/nginx/nginx.mtail)
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "install-system: missing packages ${missing[*]}; run as root or install them" >&2; exit 1; }
else
  SUDO=
fi
echo "install-system: installing ${missing[*]}"
# Packages must not start services (no systemd here, and the stack runs its own on loopback).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made_policy=1
fi
trap '[ "$made_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system: done"
