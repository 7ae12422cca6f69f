"""The waiting room's door (issue 17): how many places a second the service answers
within 100 ms, as a benchmark. `make bench ONLY=places`, and part of the full `make bench`.

The opening's first seconds bring about 1,000 students a second at 10,000 students, each
a browser tab on a connection of its own asking for its place. This measures that door
alone, a few seconds per rate, so a change to the place path is judged in a minute
instead of a 7-minute opening run:

1. On its own database of the bench's throwaway PostgreSQL: one semester with its waiting
   room on, and students with tokens made up front.
2. Serve the API as `make run` does; for each rate, a fresh room (no places yet), then
   `bench/places_client.py` (a subprocess whose CPU is measured): Poisson arrivals at the
   rate for SECONDS, one connection per student, one place each, the connection kept open
   until the server closes it, as a waiting tab's is.
3. Per rate: p50/p99 of the answers (as the client timed them, from its send), the
   answers other than 200, and the CPU per place of the API's and PostgreSQL's process
   trees and of the generator.

A change to the door is judged against a reference in the same run: `--reference PATH`
serves another checkout too (make one with `git worktree add /tmp/ref <commit>`), and
each rate runs against this checkout and then the reference; results.json keeps the
reference's runs under `places.reference`.
"""

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.runtime.embedded_postgres import EmbeddedPostgres
from bench.live_server import LiveServer
from bench.load import CpuWatch, wait_with_rusage
from bench.opening import OpeningFixture, access_token, build_catalogue, open_room, percentile_ms, reset, seed
from scripts import migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RATES = (400, 700, 1_000, 1_300)  # places a second
SECONDS = 5.0
# Each tab keeps its connection this long after its answer: past KEEP_ALIVE_TIMEOUT_SECONDS
# (5 s), so the server closes it, as it does a waiting tab's (that close is part of the cost).
HOLD_S = 8.0
P99_TARGET_MS = 100.0


def run_scenario(
    pg: EmbeddedPostgres,
    settings: Settings,
    *,
    workdir: Path,
    postmaster: int,
    workers: int,
    rates: tuple[int, ...] = RATES,
    seconds: float = SECONDS,
    database: str = "places",
    reference: Path | None = None,
) -> dict[str, Any]:
    """The door at each rate. With `reference` (another checkout of this project, e.g. a
    `git worktree` of an older commit), its server too, each rate run against this
    checkout's server and then the reference's: the two codes side by side in one run, on
    one machine at one moment (runs of the same code spread widely here)."""
    started = time.monotonic()
    workdir = workdir / "places"
    workdir.mkdir()
    url = pg.create_database(database)
    migrate.upgrade(url)
    students = int(max(rates) * seconds * 1.2)
    print(f"places: {students:,} students, {', '.join(str(r) for r in rates)} places/s for {seconds:.0f} s each ...")
    fixture = seed(url, settings, build_catalogue(25), students=students)
    tokens = [access_token(fixture, settings, n) for n in range(students)]
    checkouts = {"this": PROJECT_ROOT} | ({"reference": reference.resolve()} if reference is not None else {})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    with ExitStack() as stack:
        servers = {}
        for name, root in checkouts.items():
            (workdir / f"prometheus-{name}").mkdir()
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "SECRET_KEY": settings.secret_key,
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prometheus-{name}"),
            }
            servers[name] = stack.enter_context(
                LiveServer("app.asgi:app", workers=workers, root=root, env=env, log_path=workdir / f"api-{name}.log")
            )
        for rate in rates:
            for name, server in servers.items():
                run = _one_rate(
                    server,
                    workdir=workdir,
                    url=url,
                    fixture=fixture,
                    tokens=tokens,
                    rate=rate,
                    seconds=seconds,
                    postmaster=postmaster,
                )
                runs[name].append(run)
                label = f" ({name})" if reference is not None else ""
                print(
                    f"  {rate:>5,} places/s{label}: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                    f"{run['other_answers']} not 200; CPU per place: api {run['cpu_ms_per_place']['api']} ms, "
                    f"postgres {run['cpu_ms_per_place']['postgres']} ms, generator "
                    f"{run['cpu_ms_per_place']['load_generator']} ms"
                )
    within = [run["rate_per_s"] for run in runs["this"] if run["within_target"]]
    result: dict[str, Any] = {
        "rates": runs["this"],
        "seconds_per_rate": seconds,
        "max_rate_within_target": max(within, default=0),
        "p99_target_ms": P99_TARGET_MS,
        "seconds": round(time.monotonic() - started, 1),
    }
    if reference is not None:
        result["reference"] = {"checkout": str(checkouts["reference"]), "rates": runs["reference"]}
    return result


def _one_rate(
    server: LiveServer,
    *,
    workdir: Path,
    url: str,
    fixture: OpeningFixture,
    tokens: list[str],
    rate: int,
    seconds: float,
    postmaster: int,
) -> dict[str, Any]:
    """One rate against one server, from a fresh room (no places yet)."""
    reset(url, fixture)
    open_room(url, fixture, rate_per_s=None)
    count = int(rate * seconds)
    plan = {
        "host": "127.0.0.1",
        "port": server.port,
        "semester_id": fixture.semester_id,
        "rate_per_s": rate,
        "seed": rate,
        "hold_s": HOLD_S,
        "tokens": tokens[:count],
    }
    plan_path, out_path = workdir / f"plan-{rate}-{server.port}.json", workdir / f"out-{rate}-{server.port}.json"
    plan_path.write_text(json.dumps(plan))
    watch = CpuWatch({"api": server.process.pid, "postgres": postmaster}).start()
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.places_client", str(plan_path), str(out_path)], cwd=PROJECT_ROOT
    )
    generator_cpu = wait_with_rusage(process, timeout=seconds + HOLD_S + 60)
    cores = watch.stop(extra={"load_generator": generator_cpu})
    wall = time.monotonic() - began
    if process.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"the places client failed ({process.returncode}) at {rate}/s")
    answers = json.loads(out_path.read_text())["answers"]
    latencies = [end - send for send, end, status in answers if status == 200]
    last_answer_s = max((end for _, end, _ in answers), default=0) / 1e6
    run: dict[str, Any] = {
        "rate_per_s": rate,
        "places": count,
        "answered_200": len(latencies),
        "other_answers": len(answers) - len(latencies),
        "p50_ms": percentile_ms(latencies, 50) if latencies else None,
        "p99_ms": percentile_ms(latencies, 99) if latencies else None,
        "max_ms": percentile_ms(latencies, 100) if latencies else None,
        "last_answer_s": round(last_answer_s, 2),
        "cores": cores,
        # CPU per place, the connection's opening and closing included.
        "cpu_ms_per_place": {
            name: round(1000 * cores.get(name, 0.0) * wall / max(count, 1), 3)
            for name in ("api", "postgres", "load_generator")
        },
    }
    run["within_target"] = run["p99_ms"] is not None and run["p99_ms"] <= P99_TARGET_MS
    return run
