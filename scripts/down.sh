#!/usr/bin/env bash
# Stop the stack `make up` started, and anything it left behind.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
pidfile="$OPS_VAR_DIR/run/honcho.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
rm -f "$pidfile"
# Whatever outlived honcho (a crashed manager, a stuck worker): stop it by its pid file.
for f in "$OPS_VAR_DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null) || continue
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null; sleep 1; kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
echo "down: stack stopped"
