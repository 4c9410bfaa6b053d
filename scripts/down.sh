#!/usr/bin/env bash
# Stop the stack `make up` started, and anything it left behind.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
pidfile="$OPS_VAR_DIR/run/supervisord.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid"  # supervisord stops every program (TERM, then KILL after stopwaitsecs), then exits
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
# Whatever outlived the manager (a crashed supervisord, a stuck worker): stop it by its pid file.
for f in "$OPS_VAR_DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null) || continue
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null; sleep 1; kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
echo "down: stack stopped"
