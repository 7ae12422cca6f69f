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
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.runtime.embedded_postgres import EmbeddedPostgres
from bench.live_server import LiveServer
from bench.load import CpuWatch, wait_with_rusage
from bench.opening import access_token, build_catalogue, open_room, percentile_ms, reset, seed
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
) -> dict[str, Any]:
    started = time.monotonic()
    workdir = workdir / "places"
    workdir.mkdir()
    url = pg.create_database(database)
    migrate.upgrade(url)
    students = int(max(rates) * seconds * 1.2)
    print(f"places: {students:,} students, {', '.join(str(r) for r in rates)} places/s for {seconds:.0f} s each ...")
    fixture = seed(url, settings, build_catalogue(25), students=students)
    tokens = [access_token(fixture, settings, n) for n in range(students)]
    (workdir / "prometheus").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": settings.secret_key,
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
    }
    runs = []
    with LiveServer("app.asgi:app", workers=workers, env=env, log_path=workdir / "api.log") as server:
        groups = {"api": server.process.pid, "postgres": postmaster}
        for rate in rates:
            reset(url, fixture)  # no places yet
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
            plan_path, out_path = workdir / f"plan-{rate}.json", workdir / f"out-{rate}.json"
            plan_path.write_text(json.dumps(plan))
            watch = CpuWatch(groups).start()
            began = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.places_client", str(plan_path), str(out_path)], cwd=PROJECT_ROOT
            )
            generator_cpu = wait_with_rusage(process, timeout=seconds + HOLD_S + 60)
            cores = watch.stop(extra={"load_generator": generator_cpu})
            wall = time.monotonic() - began
            if process.returncode != 0 or not out_path.exists():
                raise RuntimeError(f"the places client failed ({process.returncode}) at {rate}/s")
            output = json.loads(out_path.read_text())
            answers = output["answers"]
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
            runs.append(run)
            print(
                f"  {rate:>5,} places/s: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                f"{run['other_answers']} not 200; CPU per place: api {run['cpu_ms_per_place']['api']} ms, "
                f"postgres {run['cpu_ms_per_place']['postgres']} ms, generator "
                f"{run['cpu_ms_per_place']['load_generator']} ms"
            )
    within = [run["rate_per_s"] for run in runs if run["within_target"]]
    return {
        "rates": runs,
        "seconds_per_rate": seconds,
        "max_rate_within_target": max(within, default=0),
        "p99_target_ms": P99_TARGET_MS,
        "seconds": round(time.monotonic() - started, 1),
    }
