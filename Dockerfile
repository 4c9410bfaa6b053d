# The app image: web tiers, Celery worker, sweeper, exporter, Flower and the notification inbox.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPS_VAR_DIR=/var/lib/app
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /var/lib/app && chown app:app /var/lib/app
WORKDIR /srv/app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
# The library (package/), as an adopter installs it; its dependencies are in the lock above.
COPY package/ package/
RUN pip install --no-cache-dir --no-deps ./package
COPY --chown=app:app . .
USER app
EXPOSE 8000 9100
# Default: the WSGI tier; docker-compose.yml gives each service its command.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "app.wsgi:application"]
