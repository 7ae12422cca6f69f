"""Registration day (issue 14): the opening minute of a whole university, as a benchmark.

`make bench ONLY=opening STUDENTS=5000 ZIPF=1.1 DURATION=60`, and part of the full
`make bench`. On its own database of the bench's throwaway PostgreSQL:

1. Seed a semester of 200 courses and up to 10,000 students (bulk INSERT ... SELECT);
   the catalogue and the wish lists come from `locustfiles/_opening_model.py`
   (Zipf popularity, 5 non-overlapping wishes, 2 alternatives each, a fixed seed).
2. Serve the API as `make run` does, and run the opening: every student holds a
   token made before the window opens; half arrive in the first 5 s and the rest
   over DURATION; the open-model client (`bench/opening_client.py`, a subprocess
   whose CPU is measured) reads, registers, tries alternatives, reads again.
3. Figures from every attempt the client recorded: offered and achieved
   registrations per second, p50/p95/p99 per endpoint, time until the last
   answer, outcomes, errors, the invariant audit with the event replay,
   fairness, CPU per registration (the API's and PostgreSQL's process trees, /proc).
4. The ceiling: pgbench replays the same registrations (same students, courses
   and order) in the service's transaction shape at the API's write concurrency.
   With `room` (`--only opening-room`, issue 17) the semester's waiting room is on
   (switched on in this database before each run, at the adaptive pace or
   `room_rate_per_s`): every student first takes a place, waits to be admitted,
   then registers with its admission token (results.json's `opening_room`).
5. Growth: the same opening minute at 1,250 ... 10,000 students, then a bisection
   over N for the largest that keeps register p99 under 1 s.

Between runs the registrations, the events and the credit counters are
truncated, so every run starts from an empty semester.
"""

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

from sqlalchemy import TextClause, TextualSelect, create_engine, make_url, text

from app.core.config import Settings
from app.core.security import create_access_token, hash_password
from app.registrations import statements
from app.registrations.invariants import audit
from app.runtime.embedded_postgres import EmbeddedPostgres
from bench.live_server import LiveServer
from bench.load import CpuWatch, tcp_counters, wait_with_rusage
from bench.opening_client import FIELDS, Plan, StudentPlan
from scripts import migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "locustfiles"))
from _opening_model import (  # noqa: E402  (plain data: no Locust import)
    DEFAULT_COURSES,
    DEFAULT_SEED,
    DEFAULT_ZIPF,
    Catalogue,
    Fairness,
    fairness,
    opening_arrivals,
    outcome_rank,
)

sys.path.remove(str(PROJECT_ROOT / "locustfiles"))

PASSWORD = "opening-password"
STUDENT_PREFIX = "OPN"
FIRST_STUDENT = 100_000
GROWTH = (1_250, 2_500, 5_000, 10_000)
REGISTER_P99_TARGET_MS = 1_000.0
MY_COURSES_P99_TARGET_MS = 100.0
INVERSIONS_TARGET = 0.01
RATIO_TARGET = 0.35
THINK_S = (0.2, 0.6)
WINDOW_S = 5.0  # the saturation rate: the best window of this length
# A run is bounded by DURATION + DRAIN_ALLOWANCE_S + DRAIN_PER_STUDENT_S per student; students
# still busy then are cut off. At 10,000 students the work alone (about 7.5 registrations each,
# at 500-700 a second on two cores) takes 110-150 s.
DRAIN_ALLOWANCE_S = 120.0
DRAIN_PER_STUDENT_S = 0.02
REPLAY_LIMIT = 20_000  # the pgbench replay takes the first registrations, in the order they were sent


@dataclass(frozen=True)
class OpeningOptions:
    students: int = 5_000
    courses: int = DEFAULT_COURSES
    zipf: float = DEFAULT_ZIPF
    duration: float = 60.0
    seed: int = DEFAULT_SEED
    growth: tuple[int, ...] = GROWTH
    bisect_steps: int = 2
    replay: bool = True
    think_s: tuple[float, float] = THINK_S
    warm_up_students: int = 200
    label: str = "opening"  # "opening-room" (issue 17): the same figures, the waiting room on
    database: str = "opening"  # on the bench's throwaway PostgreSQL
    room: bool = False  # the semester's waiting room on (issue 17)
    room_rate_per_s: float | None = None  # the room's pace; None: adaptive
    root: Path = PROJECT_ROOT  # the checkout served (another one: a reference, bench --reference)


# --- data ------------------------------------------------------------------------------------


@dataclass
class OpeningFixture:
    semester_id: int
    course_ids: list[int]  # by course index in the catalogue
    student_ids: list[str]
    student_numbers: list[str]


def build_catalogue(courses: int, *, zipf: float = DEFAULT_ZIPF, seed: int = DEFAULT_SEED) -> Catalogue:
    """The courses and wish lists (locustfiles/_opening_model.py) for `seed` below."""
    return Catalogue(courses, zipf=zipf, seed=seed)


def seed(url: str, settings: Settings, catalogue: Catalogue, *, students: int) -> OpeningFixture:
    now = datetime.now(UTC)
    engine = create_engine(url)
    with engine.begin() as connection:
        semester_id = connection.execute(
            text(
                "INSERT INTO semesters (name, registration_start, registration_end) "
                "VALUES ('Registration day', :start, :end) RETURNING id"
            ),
            {"start": now - timedelta(days=1), "end": now + timedelta(days=1)},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                "reserve_limit, credits, meetings) VALUES (:semester, :code, :name, 'Prof. Opening', :schedule, "
                ":capacity, :reserve, :credits, CAST(:meetings AS jsonb))"
            ),
            [
                {
                    "semester": semester_id,
                    "code": course.code,
                    "name": course.name,
                    "schedule": course.schedule,
                    "capacity": course.capacity,
                    "reserve": course.reserve_limit,
                    "credits": course.credits,
                    "meetings": json.dumps(course.meetings),
                }
                for course in catalogue.courses
            ],
        )
        ids: dict[str, int] = {
            str(row[0]): int(row[1])
            for row in connection.execute(
                text("SELECT code, id FROM courses WHERE semester_id = :s"), {"s": semester_id}
            ).all()
        }
        rows = connection.execute(
            text(
                "INSERT INTO students (student_number, password_hash, name) "
                "SELECT :prefix || (:first + g), :hash, 'Opening Student ' || g "
                "FROM generate_series(0, :n - 1) AS g ORDER BY g RETURNING id, student_number"
            ),
            {
                "prefix": STUDENT_PREFIX,
                "first": FIRST_STUDENT,
                "hash": hash_password(PASSWORD, rounds=4),  # nobody logs in: tokens are made up front
                "n": students,
            },
        ).all()
    engine.dispose()
    rows = sorted(rows, key=lambda row: int(row.student_number.removeprefix(STUDENT_PREFIX)))
    return OpeningFixture(
        semester_id=semester_id,
        course_ids=[ids[course.code] for course in catalogue.courses],
        student_ids=[str(row.id) for row in rows],
        student_numbers=[row.student_number for row in rows],
    )


def access_token(fixture: OpeningFixture, settings: Settings, n: int) -> str:
    """Student n's access token, made up front: nobody logs in during the run."""
    return create_access_token(
        student_id=uuid.UUID(fixture.student_ids[n]), student_number=fixture.student_numbers[n], settings=settings
    )


def reset(url: str, fixture: OpeningFixture) -> None:
    """An empty semester again: no registrations, no events, no credits; then a checkpoint."""
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("TRUNCATE course_registrations, registration_events, student_terms"))
        connection.execute(
            text("UPDATE courses SET enrolled_count = 0, reserved_count = 0 WHERE semester_id = :s"),
            {"s": fixture.semester_id},
        )
        connection.execute(text("VACUUM ANALYZE courses"))
        connection.execute(text("CHECKPOINT"))
    engine.dispose()


def open_room(url: str, fixture: OpeningFixture, *, rate_per_s: float | None) -> None:
    """The semester's waiting room on, afresh: its frontier at 0 and its clock now (as
    `PUT /admin/semesters/{id}/waiting-room` sets it, plus a fresh frontier for every run)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM waiting_rooms WHERE semester_id = :s"), {"s": fixture.semester_id})
        connection.execute(
            text(
                "INSERT INTO waiting_rooms (semester_id, enabled, fixed_rate_per_s, admitted_through, frontier_at) "
                "VALUES (:s, true, :rate, (SELECT last_value FROM waiting_room_tickets), now())"
            ),
            {"s": fixture.semester_id, "rate": rate_per_s},
        )
    engine.dispose()


def make_plan(
    fixture: OpeningFixture,
    catalogue: Catalogue,
    settings: Settings,
    *,
    base_url: str,
    students: int,
    duration: float,
    options: OpeningOptions,
) -> Plan:
    parsed = urlparse(base_url)
    arrivals = opening_arrivals(students, duration=duration, seed=options.seed)
    plan_students: list[StudentPlan] = []
    for n in range(students):
        token = access_token(fixture, settings, n)
        wishes = [
            [fixture.course_ids[wish.course], *(fixture.course_ids[c] for c in wish.alternatives)]
            for wish in catalogue.wish_list(n)
        ]
        plan_students.append({"token": token, "arrival_s": round(arrivals[n], 6), "wishes": wishes})
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 80,
        "semester_id": fixture.semester_id,
        "think_s": list(options.think_s),
        "seed": options.seed,
        "max_seconds": duration + DRAIN_ALLOWANCE_S + DRAIN_PER_STUDENT_S * students,
        "students": plan_students,
        "room": options.room,
        "retry_codes": ["NOT_YET_ADMITTED"] if options.room else [],
    }


# --- one run ------------------------------------------------------------------------------------


class Attempt(NamedTuple):
    student: int
    kind: str
    course: int
    wish: int
    choice: int
    attempt: int
    first_send_us: int
    send_us: int
    end_us: int
    status: int
    code: str
    position: int


@dataclass
class RunRecords:
    students: int
    t0_us: int
    attempts: list[Attempt]
    unfinished: int
    cores: dict[str, float]
    wall_s: float
    generator_cpu_s: float
    # The generator's own event loop: its worst lateness in each second (bench/opening_client.py).
    generator_lateness_ms: list[float] = field(default_factory=list)
    # Connections the kernel did not take at once during the run (bench/load.py::tcp_counters).
    tcp: dict[str, int] = field(default_factory=dict)

    def finals(self) -> list[Attempt]:
        """The last attempt of every request (a request is one student's one call)."""
        last: dict[tuple[int, str, int], Attempt] = {}
        for attempt in self.attempts:
            key = (attempt.student, attempt.kind, attempt.course)
            if key not in last or attempt.attempt > last[key].attempt:
                last[key] = attempt
        return list(last.values())


def run_client(plan: Plan, *, workdir: Path, name: str, cpu_groups: dict[str, int]) -> RunRecords:
    run_dir = workdir / f"opening-{name}"
    run_dir.mkdir(parents=True)
    plan_path, out_path = run_dir / "plan.json", run_dir / "attempts.tsv"
    plan_path.write_text(json.dumps(plan))
    watch = CpuWatch(cpu_groups).start()
    tcp_before = tcp_counters()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.opening_client", str(plan_path), str(out_path)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cpu = wait_with_rusage(process, timeout=plan["max_seconds"] + 60)
    cores = watch.stop(extra={"load_generator": cpu})
    wall = time.monotonic() - started
    tcp = {name: count - tcp_before[name] for name, count in tcp_counters().items()}
    assert process.stdout is not None  # stdout=PIPE
    output = process.stdout.read()
    if process.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"the opening client failed ({process.returncode}) in {name}:\n{output[-3000:]}")
    if output.strip():
        print(f"  note: the opening client said: {output.strip()[-500:]}")
    t0 = unfinished = 0
    lateness_ms: list[float] = []
    attempts = []
    for line in out_path.read_text().splitlines():
        if line.startswith("# t0 "):
            t0 = int(line.split()[2])
        elif line.startswith("# unfinished "):
            unfinished = int(line.split()[2])
        elif line.startswith("# lateness_ms "):
            lateness_ms = json.loads(line.removeprefix("# lateness_ms "))
        elif line and not line.startswith("#"):
            parts = line.split("\t")
            n = [int(value) for value in parts[2:10]]
            code, position = parts[10], int(parts[11])
            attempts.append(
                Attempt(int(parts[0]), parts[1], n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], code, position)
            )
    if len(FIELDS) != len(Attempt._fields):
        raise AssertionError("bench/opening_client.py and bench/opening.py disagree on the fields")
    return RunRecords(
        students=len(plan["students"]),
        t0_us=t0,
        attempts=attempts,
        unfinished=unfinished,
        cores=cores,
        wall_s=wall,
        generator_cpu_s=cpu,
        generator_lateness_ms=lateness_ms,
        tcp=tcp,
    )


def percentile_ms(values_us: Sequence[int], p: float) -> float:
    if not values_us:
        return float("nan")
    ordered = sorted(values_us)
    rank = max(1, math.ceil(len(ordered) * p / 100))
    return round(ordered[rank - 1] / 1000, 1)


def _latency(values_us: Sequence[int]) -> dict[str, float]:
    return {f"p{p}_ms": percentile_ms(values_us, p) for p in (50, 95, 99)} | {
        "max_ms": round(max(values_us, default=0) / 1000, 1),
        "count": len(values_us),
    }


def _best_window(times_us: Iterable[int], window_s: float = WINDOW_S) -> float:
    """Events per second in the busiest window of `window_s` seconds."""
    ordered = sorted(times_us)
    best, start = 0, 0
    width = int(window_s * 1e6)
    for end, moment in enumerate(ordered):
        while moment - ordered[start] > width:
            start += 1
        best = max(best, end - start + 1)
    return round(best / window_s, 1)


def _is_busy(attempt: Attempt) -> bool:
    return attempt.status == 503 and attempt.code == "SERVICE_BUSY"


def _expected(final: Attempt) -> bool:
    if final.kind == "register":
        return final.status == 200 or (final.status == 409 and final.code == "COURSE_FULL")
    return final.status == 200


def integrity(url: str) -> dict[str, Any]:
    """The service's audit, with the event replay (every write here went through the service),
    in one snapshot: requests the cancelled load left in flight may still be committing."""
    engine = create_engine(url)
    try:
        report = audit(engine, trail=True)
    finally:
        engine.dispose()
    return {
        "courses_checked": report.courses_checked,
        "registrations": report.registrations_checked,
        "violations": len(report.violations),
        "first_violations": [str(violation) for violation in report.violations[:10]],
        "ok": report.ok,
    }


def summarize(
    records: RunRecords, *, duration: float, audit: dict[str, Any], cpu_groups: Iterable[str]
) -> dict[str, Any]:
    """The figures of one run (results.json keeps them; bench/opening_report.py shows them)."""
    t0 = records.t0_us
    finals = records.finals()
    registers = [f for f in finals if f.kind == "register"]
    answered = [f for f in registers if _expected(f)]
    outcomes = Counter(f.code if f.status == 200 else "FULL" for f in answered)
    wishes_met = {(f.student, f.wish) for f in answered if f.status == 200}
    first_wish = sum(1 for f in answered if f.wish == 0 and f.choice == 0 and f.code == "ENROLLED")

    latency: dict[str, dict[str, Any]] = {}
    kinds = ("place", "wait", "status", "courses", "register", "my_courses")
    for kind in [k for k in kinds if any(f.kind == k for f in finals)]:
        mine = [f for f in finals if f.kind == kind]
        latency[kind] = {
            # What the student waited for an answer: from the first attempt's send to the
            # last attempt's answer, Retry-After waits included.
            "until_answered": _latency([f.end_us - f.first_send_us for f in mine]),
            # Each answer the server gave, as the client timed it (503s included).
            "per_attempt": _latency(
                [a.end_us - a.send_us for a in records.attempts if a.kind == kind and a.status != 0]
            ),
        }

    errors_5xx = sum(1 for a in records.attempts if a.status >= 500 and not _is_busy(a))
    busy = sum(1 for a in records.attempts if _is_busy(a))
    busy_at_connection_limit = sum(1 for a in records.attempts if _is_busy(a) and a.position == 1)
    connection_errors = sum(1 for a in records.attempts if a.status == 0)
    unexpected = Counter(f"{f.kind} {f.status} {f.code}".strip() for f in finals if not _expected(f))

    register_first_sends = [f.first_send_us for f in registers]
    last_first_send = max(register_first_sends, default=t0)
    last_answer = max((a.end_us for a in records.attempts), default=t0)
    last_register_answer = max((f.end_us for f in answered), default=t0)
    offered = len(registers) / max((last_first_send - t0) / 1e6, 1e-9)
    achieved = len(answered) / max((last_register_answer - t0) / 1e6, 1e-9)

    hottest = []
    by_course: dict[int, list[Attempt]] = {}
    for final in answered:
        by_course.setdefault(final.course, []).append(final)
    for course, finals_of_course in sorted(by_course.items(), key=lambda item: -len(item[1]))[:3]:
        counted = Counter(f.code if f.status == 200 else "FULL" for f in finals_of_course)
        hottest.append(
            {
                "course_id": course,
                "registrations": len(finals_of_course),
                "enrolled": counted.get("ENROLLED", 0),
                "reserved": counted.get("RESERVED", 0),
                "full": counted.get("FULL", 0),
                "p99_ms": percentile_ms([f.end_us - f.first_send_us for f in finals_of_course], 99),
                "last_answer_s": round((max(f.end_us for f in finals_of_course) - t0) / 1e6, 2),
            }
        )

    fair: Fairness = fairness((f.course, f.send_us, outcome_rank(f.code, f.position or None)) for f in answered)
    fair_door: Fairness = fairness(
        (f.course, f.first_send_us, outcome_rank(f.code, f.position or None)) for f in answered
    )
    # Arrival at the door: the student's first request (with the room on, its POST /queue).
    door: dict[int, int] = {}
    for attempt in records.attempts:
        if attempt.student not in door or attempt.first_send_us < door[attempt.student]:
            door[attempt.student] = attempt.first_send_us
    fair_arrival: Fairness = fairness(
        (f.course, door[f.student], outcome_rank(f.code, f.position or None)) for f in answered
    )
    first_arrival = min(door.values(), default=t0)

    seconds = {name: records.cores.get(name, 0.0) * records.wall_s for name in (*cpu_groups, "load_generator")}
    per_registration = {
        f"{name}_ms": round(1000 * seconds.get(name, 0.0) / max(len(answered), 1), 3) for name in ("api", "postgres")
    }
    per_registration["total_ms"] = round(per_registration["api_ms"] + per_registration["postgres_ms"], 3)

    timeline_bins = math.ceil((last_answer - t0) / 1e6) + 1
    arrivals_per_s = [0] * timeline_bins
    answered_per_s = [0] * timeline_bins
    busy_per_s = [0] * timeline_bins
    first_of_student = door
    for attempt in records.attempts:
        if _is_busy(attempt):
            busy_per_s[max(0, (attempt.end_us - t0) // 1_000_000)] += 1
    for moment in first_of_student.values():
        arrivals_per_s[max(0, (moment - t0) // 1_000_000)] += 1
    for final in answered:
        answered_per_s[max(0, (final.end_us - t0) // 1_000_000)] += 1

    return {
        "students": records.students,
        "duration_s": duration,
        "requests": len(finals),
        "attempts": len(records.attempts),
        "registrations": len(answered),
        "register_requests": len(registers),
        "enrolled": outcomes.get("ENROLLED", 0),
        "reserved": outcomes.get("RESERVED", 0),
        "full": outcomes.get("FULL", 0),
        "wishes": sum(1 for f in registers if f.choice == 0),
        "wishes_met": len(wishes_met),
        "wishes_met_share": round(len(wishes_met) / max(sum(1 for f in registers if f.choice == 0), 1), 4),
        "first_wish_enrolled_share": round(first_wish / max(records.students, 1), 4),
        "offered_per_s": round(offered, 1),
        "offered_peak_per_s": _best_window(register_first_sends),
        "achieved_per_s": round(achieved, 1),
        "saturation_per_s": _best_window(f.end_us for f in answered),
        "sustained_per_s": _sustained(answered_per_s),
        "last_answer_s": round((last_answer - t0) / 1e6, 2),
        "drain_s": round((last_answer - first_arrival) / 1e6, 2),  # first arrival to the last answer
        "p99_place_ms": latency["place"]["until_answered"]["p99_ms"] if "place" in latency else None,
        "p99_wait_answer_ms": latency["wait"]["per_attempt"]["p99_ms"] if "wait" in latency else None,
        "admission_waits": sum(1 for a in records.attempts if a.kind == "wait"),
        "not_yet_admitted": sum(1 for a in records.attempts if a.code == "NOT_YET_ADMITTED"),
        "p99_register_ms": latency["register"]["until_answered"]["p99_ms"],
        "p99_register_attempt_ms": latency["register"]["per_attempt"]["p99_ms"],
        "p99_my_courses_ms": latency["my_courses"]["until_answered"]["p99_ms"],
        "latency": latency,
        "errors_5xx": errors_5xx,
        "busy_503": busy,
        "busy_503_connection_limit": busy_at_connection_limit,  # the rest: the admission gates
        "connection_errors": connection_errors,
        "unexpected": dict(unexpected),
        "unfinished_students": records.unfinished,
        # SYNs dropped at a full accept queue, and sent again by the clients (1 s, 3 s, 7 s later).
        "listen_drops": records.tcp.get("ListenDrops", 0),
        "syn_retransmits": records.tcp.get("TCPSynRetrans", 0),
        "violations": audit["violations"],
        "integrity": audit,
        "inversions": fair.inversions,
        "pairs": fair.pairs,
        "inversions_share": round(fair.share, 6),
        "inversions_share_by_first_attempt": round(fair_door.share, 6),
        "inversions_share_by_door": round(fair_arrival.share, 6),  # by the student's first request
        "worst_course": {"course_id": fair.worst_course, "share": fair.worst_share},
        "hottest_courses": hottest,
        "cpu_cores": records.cores,
        "cpu_per_registration": per_registration,
        "load_generator": {
            "cores": records.cores.get("load_generator", 0.0),
            "cpu_s": round(records.generator_cpu_s, 2),
            "cpu_us_per_attempt": round(1e6 * records.generator_cpu_s / max(len(records.attempts), 1), 1),
            "worst_lateness_ms": max(records.generator_lateness_ms, default=0.0),
        },
        "timeline": {
            "arrivals_per_s": arrivals_per_s,
            "answered_per_s": answered_per_s,
            "busy_per_s": busy_per_s,
            # Each answer's time, by the second it was sent: when places and estimates slowed down.
            "p99_place_and_wait_ms_per_s": _p99_per_second(records.attempts, ("place", "wait"), t0, timeline_bins),
            "p99_register_attempt_ms_per_s": _p99_per_second(records.attempts, ("register",), t0, timeline_bins),
            # The generator's own loop, its worst lateness each second: part of every latency it measured.
            "generator_lateness_ms_per_s": records.generator_lateness_ms,
        },
        "busy_503_by_kind": dict(Counter(a.kind for a in records.attempts if _is_busy(a))),
        # Where the registrations' 503s fell: a few hot courses (their share of the write gate)
        # or everywhere (the gate's capacity).
        "busy_503_register_courses": [
            {"course_id": course, "busy_503": count}
            for course, count in Counter(
                a.course for a in records.attempts if a.kind == "register" and _is_busy(a)
            ).most_common(5)
        ],
        "replay": [
            (f.student, f.course) for f in sorted(answered, key=lambda f: (f.send_us, f.student))
        ],  # removed before results.json (bench/opening.py: the pgbench replay's input)
    }


def _p99_per_second(attempts: Iterable[Attempt], kinds: Sequence[str], t0: int, bins: int) -> list[float | None]:
    """The p99 of each answer of these kinds, by the second its attempt was sent (None: none sent)."""
    by_second: list[list[int]] = [[] for _ in range(bins)]
    for attempt in attempts:
        if attempt.kind in kinds and attempt.status != 0:
            by_second[min(bins - 1, max(0, (attempt.send_us - t0) // 1_000_000))].append(
                attempt.end_us - attempt.send_us
            )
    return [percentile_ms(values, 99) if values else None for values in by_second]


def _sustained(answered_per_s: Sequence[int], *, edge_s: int = 10) -> float:
    """Registrations answered per second, the median second away from the run's first and
    last `edge_s` seconds: what the service keeps up, where the best 5 s (`saturation_per_s`)
    is what it reaches in a burst (cheap COURSE_FULL answers come in bursts)."""
    middle = sorted(answered_per_s[edge_s:-edge_s] if len(answered_per_s) > 3 * edge_s else answered_per_s)
    return float(middle[len(middle) // 2]) if middle else 0.0


def within_target(run: dict[str, Any]) -> bool:
    """Register p99 under 1 s, every answer expected, no 5xx, nothing broken."""
    return bool(
        run["p99_register_ms"] < REGISTER_P99_TARGET_MS
        and run["errors_5xx"] == 0
        and not run["unexpected"]
        and run["violations"] == 0
        and run["unfinished_students"] == 0
    )


# --- the ceiling: pgbench replays the same registrations ---------------------------------------------

_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _pgbench_sql(statement: TextClause | TextualSelect, values: dict[str, str], *, end: str = ";") -> str:
    """A statement of app/registrations/statements.py, its bind parameters replaced by
    pgbench variables or literals, on one line."""
    sql = " ".join(statements.sql_of(statement).split())
    return _BIND.sub(lambda match: values[match.group(1)], sql) + end + "\n"


def replay_script(default_max_credits: int) -> str:
    """The service's registration transaction (app/registrations/service.py: register)
    as a pgbench script: lock the student, read the standing, lock the course, then
    a seat, a reserve place, or nothing (COURSE_FULL), and commit. One round trip
    before BEGIN picks the next registration from the replay table."""
    student = "':student'"
    common = {"student": student, "course": ":course", "default_max_credits": str(default_max_credits)}

    def register(status: str, position: str, enrolled: str, reserved: str) -> str:
        details = '\'{"credits": :credits, "credits_after": :credits_after, "max_credits": :max_credits}\''
        return _pgbench_sql(
            statements.REGISTER,
            {
                **common,
                "semester": ":semester_id",
                "new_status": f"'{status}'",
                "new_position": position,
                "course_credits": ":credits",
                "new_enrolled_count": enrolled,
                "new_reserved_count": reserved,
                "actor": f"concat('student:', {student})",
                "request_id": "'pgbench-replay'",
                "details": details,
            },
        )

    return (
        "SELECT student_id AS student, course_id AS course FROM opening_replay "
        "WHERE n = (SELECT nextval('opening_replay_seq')) \\gset\n"
        "BEGIN;\n"
        + _pgbench_sql(statements.LOCK_STUDENT, common)
        + _pgbench_sql(statements.STANDING, common, end=" \\gset")
        + "\\set credits_after :term_credits + :credits\n"
        + _pgbench_sql(statements.LOCK_COURSE, common, end=" \\gset")
        + "\\if :enrolled_count < :max_capacity\n"
        + "\\set new_enrolled :enrolled_count + 1\n"
        + register("ENROLLED", "NULL", ":new_enrolled", ":reserved_count")
        + "\\elif :reserved_count < :reserve_limit\n"
        + "\\set new_reserved :reserved_count + 1\n"
        + register("RESERVED", ":new_reserved", ":enrolled_count", ":new_reserved")
        + "\\endif\n"
        + "COMMIT;\n"
    )


def _run_pgbench(
    pgbench: Path,
    *,
    script: Path,
    clients: int,
    transactions: int,
    socket_dir: str,
    database: str,
    cpu_groups: dict[str, int],
) -> dict[str, Any]:
    """pgbench for a counted number of transactions per client (bench/load.py's
    run_pgbench runs for a duration)."""
    command = [
        *(str(pgbench), "-n", "-M", "simple", "-c", str(clients), "-j", "1", "-t", str(transactions)),
        *("-h", socket_dir, "-U", "postgres", "-f", str(script), database),
    ]
    watch = CpuWatch(cpu_groups).start()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    cpu = wait_with_rusage(process, timeout=600)
    cores = watch.stop(extra={"load_generator": cpu})
    assert process.stdout is not None  # stdout=PIPE
    output = process.stdout.read()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    if process.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed in the opening replay:\n{output[-3000:]}")
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return {
        "tps": round(float(tps.group(1)), 1),
        "transactions": int(processed.group(1)) if processed else 0,
        "failed": int(failed.group(1)) if failed else 0,
        "latency_avg_ms": round(float(latency.group(1)), 3) if latency else None,
        "cpu_cores": cores,
    }


def pgbench_replay(
    pg: EmbeddedPostgres,
    url: str,
    fixture: OpeningFixture,
    replay: list[tuple[int, int]],
    *,
    clients: int,
    settings: Settings,
    pgbench: Path,
    workdir: Path,
    cpu_groups: dict[str, int],
) -> dict[str, Any]:
    reset(url, fixture)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS opening_replay"))
        connection.execute(text("DROP SEQUENCE IF EXISTS opening_replay_seq"))
        connection.execute(text("CREATE TABLE opening_replay (n bigint PRIMARY KEY, student_id uuid, course_id int)"))
        connection.execute(text("CREATE SEQUENCE opening_replay_seq"))
        connection.execute(
            text("INSERT INTO opening_replay (n, student_id, course_id) VALUES (:n, CAST(:s AS uuid), :c)"),
            [
                {"n": n + 1, "s": fixture.student_ids[student], "c": course}
                for n, (student, course) in enumerate(replay)
            ],
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE opening_replay"))
        connection.execute(text("CHECKPOINT"))
    script = workdir / "opening-replay.sql"
    script.write_text(replay_script(settings.default_max_credits))
    per_client = len(replay) // clients
    if per_client == 0:
        raise RuntimeError(f"too few registrations ({len(replay)}) to replay with {clients} clients")
    database = make_url(url).database or "opening"
    socket_dir = parse_qs(urlparse(pg.raw_uri(database)).query)["host"][0]
    result = _run_pgbench(
        pgbench,
        script=script,
        clients=clients,
        transactions=per_client,
        socket_dir=socket_dir,
        database=database,
        cpu_groups=cpu_groups,
    )
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT status::text, count(*) FROM course_registrations GROUP BY 1")).all()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE opening_replay"))
        connection.execute(text("DROP SEQUENCE opening_replay_seq"))
    engine.dispose()
    reset(url, fixture)
    return {
        "tps": result["tps"],
        "clients": clients,
        "transactions": result["transactions"],
        "failed": result["failed"],
        "latency_avg_ms": result["latency_avg_ms"],
        "registrations_stored": {str(row[0]): int(row[1]) for row in stored},
        "cpu_cores": result["cpu_cores"],
        "script": script.read_text(),
    }


# --- the scenario ----------------------------------------------------------------------------------


class RoomSampler:
    """The room's pace and frontier once a second while a run goes on (results.json's
    timeline: how the adaptive pace moved), read straight from its row."""

    def __init__(self, url: str, semester_id: int) -> None:
        self._engine = create_engine(url)
        self._semester_id = semester_id
        self._stop = threading.Event()
        self.rates: list[float] = []
        self.admitted_through: list[int] = []
        self._thread = threading.Thread(target=self._sample, name="room-sampler", daemon=True)

    def __enter__(self) -> "RoomSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _sample(self) -> None:
        query = text("SELECT rate_per_s, admitted_through FROM waiting_rooms WHERE semester_id = :s")
        while not self._stop.wait(1.0):
            with self._engine.connect() as connection:
                row = connection.execute(query, {"s": self._semester_id}).one_or_none()
            if row is not None:
                self.rates.append(round(float(row.rate_per_s), 1))
                self.admitted_through.append(int(row.admitted_through))


@dataclass
class Runner:
    """Seeds once, serves once, and runs the opening at any N on a fresh semester."""

    url: str
    settings: Settings
    options: OpeningOptions
    catalogue: Catalogue
    fixture: OpeningFixture
    server: LiveServer
    workdir: Path
    cpu_groups: dict[str, int]
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def run(self, students: int, *, name: str | None = None, keep: bool = True) -> dict[str, Any]:
        reset(self.url, self.fixture)
        duration = self.options.duration
        plan = make_plan(
            self.fixture,
            self.catalogue,
            self.settings,
            base_url=self.server.base_url,
            students=students,
            duration=duration,
            options=self.options,
        )
        if self.options.room:  # at the opening, not seconds before it: the frontier's clock starts now
            open_room(self.url, self.fixture, rate_per_s=self.options.room_rate_per_s)
        with RoomSampler(self.url, self.fixture.semester_id) as room:
            records = run_client(plan, workdir=self.workdir, name=name or str(students), cpu_groups=self.cpu_groups)
        figures = summarize(records, duration=duration, audit=integrity(self.url), cpu_groups=self.cpu_groups)
        if self.options.room:
            figures["timeline"] |= {"room_rate_per_s": room.rates, "room_admitted_through": room.admitted_through}
        if keep:
            self.runs[students] = figures
        print(
            f"  {self.options.label} {students:>6,} students: register p99 {figures['p99_register_ms']:,.0f} ms"
            f" (per answer {figures['p99_register_attempt_ms']:,.0f}), my-courses p99 "
            f"{figures['p99_my_courses_ms']:,.0f} ms, achieved {figures['achieved_per_s']:,.0f}/s "
            f"(best {WINDOW_S:.0f} s {figures['saturation_per_s']:,.0f}/s), "
            f"{figures['cpu_per_registration']['total_ms']:.2f} ms CPU/registration, 5xx {figures['errors_5xx']}, "
            f"503 {figures['busy_503']} ({figures['busy_503_connection_limit']} at the connection limit), "
            f"SYNs dropped {figures['listen_drops']:,}, "
            f"violations {figures['violations']}, "
            f"inversions {100 * figures['inversions_share']:.2f}% (by door "
            f"{100 * figures['inversions_share_by_door']:.2f}%)"
            + (f", place p99 {figures['p99_place_ms']:,.0f} ms" if figures["p99_place_ms"] is not None else "")
            + f", last answer {figures['last_answer_s']:.0f} s, "
            f"generator {figures['load_generator']['cores']:.2f} cores"
        )
        return figures


def bisect_students(runner: Runner, *, steps: int, granularity: int = 50) -> dict[str, Any]:
    """The largest N within the target, between the runs made so far: the largest that
    passed and the smallest that failed above it, halved `steps` times."""
    passed = [n for n, run in runner.runs.items() if within_target(run)]
    low = max(passed, default=0)
    failed = [n for n, run in runner.runs.items() if not within_target(run) and n > low]
    high = min(failed, default=0)
    tried = []
    if high:
        for _ in range(steps):
            middle = (low + high) // 2 // granularity * granularity
            if middle <= low or middle >= high:
                break
            run = runner.run(middle)
            tried.append(middle)
            if within_target(run):
                low = middle
            else:
                high = middle
    return {
        "max_students_within_target": low,
        "first_failing": high or None,
        "beyond_largest_run": not high,  # every run passed: the figure is a lower bound
        "tried": tried,
        "granularity": granularity,
    }


def _migrate(url: str, root: Path) -> None:
    """The variant's database to the schema of the checkout that serves it: another checkout
    (bench --reference) runs its own migrations, older or newer than these."""
    if root.resolve() == PROJECT_ROOT:
        migrate.upgrade(url)
    else:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "scripts.migrate"], cwd=root, env=env, check=True)


def run_scenario(
    pg: EmbeddedPostgres,
    settings: Settings,
    options: OpeningOptions,
    *,
    workdir: Path,
    postmaster: int,
    workers: int,
    launcher: str,
    pgbench: Path,
) -> dict[str, Any]:
    started = time.monotonic()
    if options.label != "opening":  # its own folder: every variant can run in one bench
        workdir = workdir / options.label
        workdir.mkdir()
    catalogue = build_catalogue(options.courses, zipf=options.zipf, seed=options.seed)
    url = pg.create_database(options.database)
    _migrate(url, options.root)
    most = max((options.students, *options.growth))
    print(
        f"opening: {options.courses} courses ({catalogue.capacity:,} seats), {most:,} students, Zipf "
        f"{options.zipf}, {options.duration:.0f} s window ..."
    )
    fixture = seed(url, settings, catalogue, students=most)
    (workdir / "opening-prometheus").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": settings.secret_key,
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "opening-prometheus"),
        "PYTHONUNBUFFERED": "1",
    }
    result: dict[str, Any] = {"label": options.label}
    with LiveServer(
        "app.asgi:app",
        workers=workers,
        launcher="uvicorn" if launcher == "uvicorn" else "serve",
        root=options.root,
        env=env,
        log_path=workdir / "opening-api.log",
    ) as server:
        cpu_groups = {"api": server.process.pid, "postgres": postmaster}
        runner = Runner(url, settings, options, catalogue, fixture, server, workdir, cpu_groups)
        if options.warm_up_students:
            warm = replace(options, duration=2.0)
            Runner(url, settings, warm, catalogue, fixture, server, workdir, cpu_groups).run(
                options.warm_up_students, name="warm-up", keep=False
            )
        main = runner.run(options.students)
        replay = main.pop("replay")[:REPLAY_LIMIT]
        ceiling: dict[str, Any] | None = None
        if options.replay:
            clients = workers * settings.db_pool_size
            ceiling = pgbench_replay(
                pg,
                url,
                fixture,
                replay,
                clients=clients,
                settings=settings,
                pgbench=pgbench,
                workdir=workdir,
                cpu_groups={"postgres": postmaster},
            )
            print(
                f"  ceiling: pgbench replays the {len(replay):,} registrations at {clients} clients: "
                f"{ceiling['tps']:,.0f} TPS"
            )
        for students in options.growth:
            if students not in runner.runs:
                runner.run(students)
        bisection = bisect_students(runner, steps=options.bisect_steps)
        server_log = (workdir / "opening-api.log").read_text(errors="replace").splitlines()[-10:]
    for run in runner.runs.values():
        run.pop("replay", None)
    ratio = main["saturation_per_s"] / ceiling["tps"] if ceiling and ceiling["tps"] else None
    growth = [
        {key: value for key, value in runner.runs[n].items() if key not in ("timeline", "latency", "integrity")}
        | {"within_target": within_target(runner.runs[n])}
        for n in sorted(runner.runs)
    ]
    result.update(
        {
            "students": options.students,
            "courses": options.courses,
            "seats": catalogue.capacity,
            "zipf": options.zipf,
            "duration_s": options.duration,
            "seed": options.seed,
            "think_s": list(options.think_s),
            "registrations": main["registrations"],
            "offered_per_s": main["offered_per_s"],
            "achieved_per_s": main["achieved_per_s"],
            "saturation_per_s": main["saturation_per_s"],
            "p99_register_ms": main["p99_register_ms"],
            "p99_my_courses_ms": main["p99_my_courses_ms"],
            "errors_5xx": main["errors_5xx"],
            "violations": main["violations"],
            "inversions_share": main["inversions_share"],
            "inversions_share_by_door": main["inversions_share_by_door"],
            "drain_s": main["drain_s"],
            **(
                {"p99_place_ms": main["p99_place_ms"], "room_rate_per_s": options.room_rate_per_s}
                if options.room
                else {}
            ),
            "ceiling_tps": ceiling["tps"] if ceiling else None,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "max_students_within_target": bisection["max_students_within_target"],
            "main": main,
            "ceiling": ceiling,
            "growth": growth,
            "bisection": bisection,
            "targets": {
                "p99_register_ms": REGISTER_P99_TARGET_MS,
                "p99_my_courses_ms": MY_COURSES_P99_TARGET_MS,
                "inversions_share": INVERSIONS_TARGET,
                "ratio": RATIO_TARGET,
            },
            "server_log_tail": server_log,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    return result
