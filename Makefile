# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8500
WORKERS ?= 2

.PHONY: install run test migrate seed clean-data load bench

# The virtualenv, rebuilt whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

## Embedded PostgreSQL (unless DATABASE_URL is set), migrations, demo data, API on $(HOST):$(PORT).
run: install
	$(PY) -m scripts.run_dev --host $(HOST) --port $(PORT) --workers $(WORKERS)

## The whole suite against a throwaway PostgreSQL (or TEST_DATABASE_URL).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

## The inner loop, well under a minute: everything but the tests marked live_server, fuzz,
## slow or load (pyproject.toml); `make test` still runs them all.
.PHONY: test-fast
test-fast: install
	$(PY) -m pytest -m "not live_server and not fuzz and not slow and not load" $(PYTEST_ARGS)

## Load test, against `make run` unless HOST is given (docs/load-testing.md):
##   make load PRESET=spike USERS= SPAWN_RATE= RUN_TIME= MIX="StudentUser:1,RaceUser:2" PROCESSES= HOST=
## HOST is a URL, host:port, or a host (then PORT applies); LOAD_ARGS passes more flags (e.g. --web).
PRESET ?= load
load: install
	$(PY) -m bench.run_load --preset $(PRESET) --host $(if $(findstring :,$(HOST)),$(HOST),$(HOST):$(PORT)) \
		$(if $(USERS),--users $(USERS)) $(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE)) \
		$(if $(RUN_TIME),--run-time $(RUN_TIME)) $(if $(MIX),--mix "$(MIX)") \
		$(if $(PROCESSES),--processes $(PROCESSES)) $(LOAD_ARGS)

## Registrations/s and the rest against this machine's own ceilings (docs/performance.md), about
## 3 minutes: its own throwaway PostgreSQL and servers on 127.0.0.1; report in reports/bench-<time>/.
## Installs wrk (apt) and the chart's libraries (bench/requirements.txt) when missing.
##   make bench WORKERS=2 BENCH_ARGS="--seconds 5 --pgbench-seconds 4 --pg-stats"
bench: install $(VENV)/.bench-installed
	@command -v wrk >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
	$(PY) -m bench --workers $(WORKERS) $(BENCH_ARGS)

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r bench/requirements.txt
	@touch $@

## Against DATABASE_URL: migrate / seed only.
migrate: install
	$(PY) -m scripts.migrate

seed: install
	$(PY) -m scripts.seed

## Delete the development database (stop `make run` first).
clean-data:
	rm -rf .data
