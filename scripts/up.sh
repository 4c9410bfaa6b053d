#!/usr/bin/env bash
# Run the whole local stack in the foreground under honcho; Ctrl-C (or `make down`) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
mkdir -p "$OPS_VAR_DIR"/{run,log,redis,media}
if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
  # A per-checkout secret, made once and kept out of git.
  [ -s "$OPS_VAR_DIR/secret_key" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(50))' >"$OPS_VAR_DIR/secret_key"
  DJANGO_SECRET_KEY=$(cat "$OPS_VAR_DIR/secret_key")
  export DJANGO_SECRET_KEY
fi
pidfile="$OPS_VAR_DIR/run/honcho.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "up: the stack is already running (pid $(cat "$pidfile")); 'make down' stops it" >&2
  exit 1
fi
python manage.py migrate --noinput >"$OPS_VAR_DIR/log/migrate.log" 2>&1 || {
  cat "$OPS_VAR_DIR/log/migrate.log" >&2; exit 1; }
cat <<MSG
up: starting the stack on $OPS_HOST (state, logs and pid files under $OPS_VAR_DIR)
  web (WSGI)     http://$OPS_HOST:$WEB_PORT/healthz
  jobs API       http://$OPS_HOST:$WEB_PORT/api/imports/  (POST a CSV as field 'file')
  Redis          redis://$OPS_HOST:$REDIS_PORT/0
  logs           $OPS_VAR_DIR/log/stack.log   stop: Ctrl-C or 'make down'
MSG
echo $$ >"$pidfile"
# honcho replaces this shell, so the pid file names it; output also goes to a log file.
exec honcho --no-colour -f ops/Procfile -d "$PWD" start > >(trap "" INT TERM; exec tee -a "$OPS_VAR_DIR/log/stack.log") 2>&1
