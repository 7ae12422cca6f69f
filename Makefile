# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8500
WORKERS ?= 2

.PHONY: install install-dev run test lint lock migrate seed clean-data load bench haproxy cluster cluster-down test-cluster

# Every install takes its versions from requirements.lock (-c: a constraints file), so that
# the packages' own dependencies are pinned too; `make lock` writes it (README "Dependencies").
PIP_INSTALL := $(PY) -m pip install --quiet -c requirements.lock

# The runtime set (requirements.txt), installed again whenever it or the lock changes.
$(VENV)/.installed: requirements.txt requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -r requirements.txt
	@touch $@

# Tests, lint, load and benchmarks on top of it (requirements-dev.txt).
$(VENV)/.dev-installed: requirements-dev.txt requirements.lock $(VENV)/.installed
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.dev-installed

## Embedded PostgreSQL (unless DATABASE_URL is set), migrations, demo data, API on $(HOST):$(PORT).
run: install
	$(PY) -m scripts.run_dev --host $(HOST) --port $(PORT) --workers $(WORKERS)

## The whole suite against a throwaway PostgreSQL (or TEST_DATABASE_URL). The cluster tests
## (tests/cluster, about 30 s) need haproxy: installed from Debian's packages when missing.
test: install-dev haproxy
	$(PY) -m pytest $(PYTEST_ARGS)

## The cluster tests alone (marker `cluster`): PostgreSQL primary + synchronous standby, three
## API nodes and HAProxy, each test with a fault (docs/deployment.md).
test-cluster: install-dev haproxy
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

## Debian's haproxy (2.6), for `make cluster` and the cluster tests; apt-get only when missing.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { \
		echo "installing haproxy (apt-get install haproxy)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq haproxy; }

## A local cluster on 127.0.0.1 (scripts/cluster.py, docs/deployment.md): PostgreSQL primary and
## synchronous standby (.data/cluster/, kept between runs), 3 API nodes (ports 8501-8503,
## WORKERS each), HAProxy on port 8500 (stats on 8404/stats); returns once HAProxy answers
## /ready. `make load` runs against it unchanged. Failover: .venv/bin/python -m scripts.failover
cluster: install haproxy
	$(PY) -m scripts.cluster up --port 8500 --nodes 3 --workers $(WORKERS)

## Stop HAProxy, the API nodes and both PostgreSQL servers (the data stays; `make clean-data` deletes it).
cluster-down: install
	$(PY) -m scripts.cluster down

## The inner loop, well under a minute: everything but the tests marked live_server, fuzz,
## slow or load (pyproject.toml); `make test` still runs them all.
.PHONY: test-fast
test-fast: install-dev
	$(PY) -m pytest -m "not live_server and not fuzz and not slow and not load" $(PYTEST_ARGS)

## Load test, against `make run` unless HOST is given (docs/load-testing.md):
##   make load PRESET=spike USERS= SPAWN_RATE= RUN_TIME= MIX="StudentUser:1,RaceUser:2" PROCESSES= HOST=
## HOST is a URL, host:port, or a host (then PORT applies); LOAD_ARGS passes more flags (e.g. --web).
PRESET ?= load
load: install-dev
	$(PY) -m bench.run_load --preset $(PRESET) --host $(if $(findstring :,$(HOST)),$(HOST),$(HOST):$(PORT)) \
		$(if $(USERS),--users $(USERS)) $(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE)) \
		$(if $(RUN_TIME),--run-time $(RUN_TIME)) $(if $(MIX),--mix "$(MIX)") \
		$(if $(PROCESSES),--processes $(PROCESSES)) $(LOAD_ARGS)

## Registrations/s and the rest against this machine's own ceilings (docs/performance.md), about
## 15 minutes with the opening minute (3 without it: ONLY=pgbench,trivial,hot,full,many,reads,storm):
## its own throwaway PostgreSQL and servers on 127.0.0.1; report in reports/bench-<time>/.
## Installs wrk (apt) when missing; the chart's libraries come with requirements-dev.txt.
##   make bench WORKERS=2 BENCH_ARGS="--seconds 5 --pgbench-seconds 4 --pg-stats"
## The opening minute (registration day, ~10 minutes with its growth runs) is part of it; alone:
##   make bench ONLY=opening STUDENTS=5000 ZIPF=1.1 DURATION=60
##   make bench ONLY=opening STUDENTS=1000 DURATION=20 BENCH_ARGS="--opening-growth 500,2000 --opening-bisect 1"
## The same with the semester's waiting room on (issue 17; BENCH_ARGS="--opening-room-rate 150" for a fixed pace):
##   make bench ONLY=opening-room STUDENTS=10000
##   make bench ONLY=opening,opening-room STUDENTS=2500 BENCH_ARGS="--opening-growth 2500 --opening-bisect 0"
## The waiting room's door alone (places a second within 100 ms; about a minute):
##   make bench ONLY=places
## Against another checkout in the same run (runs of the same code spread widely on these
## machines): the door's rates alternate between the two; each opening variant runs again
## on the reference after this checkout's.
##   git worktree add /tmp/ref HEAD~1 && make bench ONLY=places BENCH_ARGS="--reference /tmp/ref"
##   make bench ONLY=opening-room STUDENTS=10000 BENCH_ARGS="--opening-growth '' --opening-bisect 0 --reference /tmp/ref"
## Add --opening-repeat 2 to run each pair twice, the second time the reference first (the first
## of a pair was measured 6-7% faster whichever code it ran).
## BENCH_ARGS="--keep-workdir" keeps the servers' logs (the pace's cuts) and the generator's attempts.
bench: install-dev
	@command -v wrk >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
	$(PY) -m bench --workers $(WORKERS) $(if $(ONLY),--only $(ONLY)) $(if $(STUDENTS),--students $(STUDENTS)) \
		$(if $(ZIPF),--zipf $(ZIPF)) $(if $(DURATION),--duration $(DURATION)) $(BENCH_ARGS)

## ruff (lint and format) and mypy, settings in pyproject.toml; .pre-commit-config.yaml runs the same.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Resolve requirements-dev.txt (requirements.txt included) afresh in a throwaway virtualenv and
## write every package it installed, with its version, to requirements.lock. Python 3.11 on Linux,
## as in the image. Review the diff, then `make test`.
lock:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "lock with Python 3.11, as the image runs"'
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet -r requirements-dev.txt; \
	{ echo "# Generated by \`make lock\` from requirements-dev.txt (requirements.txt included): every package"; \
	  echo "# a fresh virtualenv installed, Python $$("$$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())') on Linux. Do not edit by hand."; \
	  echo "# Every install (Makefile, Dockerfile) uses it as constraints: pip install -c requirements.lock."; \
	  "$$tmp/venv/bin/python" -m pip freeze; } > requirements.lock
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) packages"

## Against DATABASE_URL: migrate / seed only.
migrate: install
	$(PY) -m scripts.migrate

seed: install
	$(PY) -m scripts.seed

## Delete the development database (stop `make run` first).
clean-data:
	rm -rf .data
