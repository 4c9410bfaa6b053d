# Sourced by the stack scripts: every port, folder and setting of the local stack, each
# overridable from the environment (the README lists them).
: "${OPS_VAR_DIR:=$PWD/var}"
: "${OPS_HOST:=127.0.0.1}"
: "${WEB_PORT:=8000}"
: "${ASGI_PORT:=8001}"
: "${WEB_METRICS_PORT:=9100}"
: "${ASGI_METRICS_PORT:=9101}"
: "${FLOWER_PORT:=5555}"
: "${EXPORTER_PORT:=9808}"
: "${REDIS_PORT:=6379}"
: "${REDIS_EXPORTER_PORT:=9121}"
: "${PROMETHEUS_PORT:=9090}"
: "${ALERTMANAGER_PORT:=9093}"
: "${INBOX_PORT:=9095}"
# The proxy in front of both web tiers (ops/nginx/, docs/proxy.md); 8000/8001 stay gunicorn's.
: "${NGINX_PORT:=8080}"               # -> the WSGI tier (WEB_PORT)
: "${NGINX_ASGI_PORT:=8081}"          # -> the ASGI tier (ASGI_PORT)
: "${NGINX_STATUS_PORT:=8082}"        # stub_status, always 127.0.0.1
: "${NGINX_EXPORTER_PORT:=9113}"      # prometheus-nginx-exporter (job nginx)
: "${NGINX_LOG_EXPORTER_PORT:=9114}"  # mtail over the access log (job nginx-log)
# X-Forwarded-* count only from these peers (the app's guard and gunicorn's forwarded_allow_ips):
# nginx on loopback. Direct clients on loopback are trusted too: the ports are loopback-only.
: "${OBS_TRUSTED_PROXIES:=127.0.0.1}"
: "${CELERY_CONCURRENCY:=2}"
: "${CELERY_BROKER_URL:=redis://$OPS_HOST:$REDIS_PORT/0}"
# The local stack is a production-like deploy on plain HTTP over loopback.
: "${DJANGO_ENV:=production}"
: "${DJANGO_ALLOWED_HOSTS:=127.0.0.1,localhost}"
: "${DJANGO_SECURE_SSL_REDIRECT:=0}"
: "${DJANGO_SECURE_COOKIES:=0}"
: "${DJANGO_SECURE_HSTS_SECONDS:=0}"
export OPS_VAR_DIR OPS_HOST WEB_PORT ASGI_PORT WEB_METRICS_PORT ASGI_METRICS_PORT FLOWER_PORT EXPORTER_PORT \
  REDIS_PORT REDIS_EXPORTER_PORT PROMETHEUS_PORT ALERTMANAGER_PORT INBOX_PORT CELERY_CONCURRENCY \
  NGINX_PORT NGINX_ASGI_PORT NGINX_STATUS_PORT NGINX_EXPORTER_PORT NGINX_LOG_EXPORTER_PORT OBS_TRUSTED_PROXIES \
  CELERY_BROKER_URL DJANGO_ENV DJANGO_ALLOWED_HOSTS DJANGO_SECURE_SSL_REDIRECT DJANGO_SECURE_COOKIES \
  DJANGO_SECURE_HSTS_SECONDS
# Web tiers' metrics: one prometheus_client multiprocess folder per tier (docs/web-observability.md).
: "${WEB_METRICS_DIR:=$OPS_VAR_DIR/prometheus/web}"
: "${ASGI_METRICS_DIR:=$OPS_VAR_DIR/prometheus/asgi}"
: "${ASGI_WORKERS:=2}"
export WEB_METRICS_DIR ASGI_METRICS_DIR ASGI_WORKERS
# Celery: workers, the sweeper and the exporter share one metrics folder (docs/celery-observability.md).
: "${CELERY_METRICS_DIR:=$OPS_VAR_DIR/prometheus/celery}"
export CELERY_METRICS_DIR
export PATH="$PWD/.venv/bin:$PATH"
# Monitoring of the local stack (scripts/render_stack.py writes its config under var/ops/).
: "${OPS_SCRAPE_INTERVAL:=}"        # empty: as in ops/prometheus/prometheus.yml
: "${OPS_EVALUATION_INTERVAL:=}"
: "${OPS_RULES_COMPRESS:=}"         # e.g. 20 for fault drills (docs/drills.md); empty: production rules
: "${OPS_ALERTMANAGER_FAST:=0}"     # 1: notify within seconds (drills)
: "${OPS_TRAFFIC_RATE:=2}"          # background requests per second; 0 sends none
export OPS_SCRAPE_INTERVAL OPS_EVALUATION_INTERVAL OPS_RULES_COMPRESS OPS_ALERTMANAGER_FAST OPS_TRAFFIC_RATE
