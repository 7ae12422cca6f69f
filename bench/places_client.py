"""The load generator of the waiting room's door: `python -m bench.places_client PLAN OUT`.

Students arrive at random (a Poisson process at the plan's rate, as the opening's first
seconds are), each on a connection of its own, as a browser tab opening the room's page:
it asks for its place (`POST /semesters/{id}/queue`) once, and keeps its connection
open for `hold_s` seconds, as a waiting tab does (past the server's keep-alive timeout
the server closes it first). Nothing is retried: this measures the door, not a client.

The plan is JSON written by bench/places.py; the output is JSON: per place its arrival,
send and answer (CLOCK_MONOTONIC microseconds from the first arrival) and status, and
the generator's CPU seconds.
"""

import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.opening_client import Connection

REQUEST_TIMEOUT_S = 30.0


def _now_us() -> int:
    return time.monotonic_ns() // 1000


async def _student(plan: dict[str, Any], token: str, t0: int, out: list[tuple[int, int, int]]) -> None:
    connection = Connection(plan["host"], plan["port"])
    send = _now_us()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            answer = await connection.request("POST", f"/semesters/{plan['semester_id']}/queue", token)
        out.append((send - t0, _now_us() - t0, answer.status))
        await asyncio.sleep(plan["hold_s"])
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        out.append((send - t0, _now_us() - t0, 0))
    finally:
        connection.close()


async def run(plan: dict[str, Any], out_path: Path) -> None:
    rng = random.Random(plan["seed"])
    answers: list[tuple[int, int, int]] = []
    tasks = []
    t0 = _now_us()
    arrival = 0.0
    for token in plan["tokens"]:
        arrival += rng.expovariate(plan["rate_per_s"])
        delay = (t0 + arrival * 1e6 - _now_us()) / 1e6
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_student(plan, token, t0, answers)))
    await asyncio.gather(*tasks)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out_path.write_text(json.dumps({"answers": answers, "cpu_s": usage.ru_utime + usage.ru_stime}))


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(plan, Path(sys.argv[2])))
    else:
        uvloop.run(run(plan, Path(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
