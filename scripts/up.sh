#!/usr/bin/env bash
# Run the whole local stack in the foreground under supervisord; Ctrl-C (or `make down`) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack-env.sh
mkdir -p "$OPS_VAR_DIR"/{run,log,redis,media,nginx}
source scripts/stack-secrets.sh  # secret key, Flower login, API token: made once, 0600
pidfile="$OPS_VAR_DIR/run/supervisord.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "up: the stack is already running (pid $(cat "$pidfile")); 'make down' stops it" >&2
  exit 1
fi
python manage.py migrate --noinput >"$OPS_VAR_DIR/log/migrate.log" 2>&1 || {
  cat "$OPS_VAR_DIR/log/migrate.log" >&2; exit 1; }
python scripts/render_stack.py >/dev/null
cat <<MSG
up: starting the stack on $OPS_HOST (state, logs and pid files under $OPS_VAR_DIR)
  proxy (nginx)  http://$OPS_HOST:$NGINX_PORT/healthz -> WSGI   http://$OPS_HOST:$NGINX_ASGI_PORT/healthz -> ASGI
                 stub_status http://127.0.0.1:$NGINX_STATUS_PORT/stub_status   metrics http://$OPS_HOST:$NGINX_EXPORTER_PORT/metrics (nginx), http://$OPS_HOST:$NGINX_LOG_EXPORTER_PORT/metrics (access log)
  web (WSGI)     http://$OPS_HOST:$WEB_PORT/healthz   metrics http://$OPS_HOST:$WEB_METRICS_PORT/metrics   (direct, behind the proxy)
  web (ASGI)     http://$OPS_HOST:$ASGI_PORT/healthz   metrics http://$OPS_HOST:$ASGI_METRICS_PORT/metrics   (direct, behind the proxy)
  jobs API       http://$OPS_HOST:$NGINX_PORT/api/imports/  (POST a CSV as field 'file'; token: $OPS_VAR_DIR/api_token)
  Prometheus     http://$OPS_HOST:$PROMETHEUS_PORT/alerts
  Celery         exporter http://$OPS_HOST:$EXPORTER_PORT/metrics   Flower http://$OPS_HOST:$FLOWER_PORT (login: $OPS_VAR_DIR/flower_basic_auth)
  Alertmanager   http://$OPS_HOST:$ALERTMANAGER_PORT
  inbox          http://$OPS_HOST:$INBOX_PORT/  (what would have paged)
  Redis          redis://$OPS_HOST:$REDIS_PORT/0   exporter http://$OPS_HOST:$REDIS_EXPORTER_PORT/metrics
  logs           $OPS_VAR_DIR/log/<process>.log   status: make status   stop: Ctrl-C or 'make down'
MSG
exec supervisord -c "$OPS_VAR_DIR/ops/supervisord.conf"
