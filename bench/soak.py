"""Soak test: steady registrations, drops and reads for a long time, watching
the server's memory and the database's connections for leaks.

    .venv/bin/python -m bench.soak                          # 10 minutes: own PostgreSQL, own API
    .venv/bin/python -m bench.soak --duration 180 --interval 5
    .venv/bin/python -m bench.soak --database-url URL       # own API on an existing PostgreSQL
    .venv/bin/python -m bench.soak --port 8500              # the API `make run` serves

By default it starts a throwaway embedded PostgreSQL, migrates it, seeds a
semester, courses and students of its own, and serves the API on a free port
of 127.0.0.1 the way `make run` does (app/runtime/server.py, --workers processes). With --port it drives an API already
listening on 127.0.0.1 instead, logging in as the demo students (STU10000...,
`make run` seeds them); its processes are found by the listening port, and its
database (for counting connections) is --database-url, DATABASE_URL, or the
`make run` one.

Every --interval seconds it samples the resident memory (RSS) of the server's
processes (psutil) and the connections to the database (pg_stat_activity),
and prints a row. At the end it compares the average of the last third of the
samples taken after --warmup with the first third. Exit status 1 when RSS or
connections grew beyond the thresholds, when either could not be sampled
(nothing measured is not "flat"), when a server process was replaced (a
worker died), when any request failed with a 5xx or a connection error, or
when the registration invariants do not hold at the end; 0 otherwise; 2 when
it could not start.

The load is modest on purpose (--rate requests per second, spread over
--clients threads): a soak looks for what creeps, not for the ceiling.
"""

import argparse
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg2
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.config import normalize_database_url
from app.core.security import hash_password
from bench.live_server import LiveServer, ServerNotReady, wait_ready

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PASSWORD = "soak-password"
BCRYPT_ROUNDS = 4  # own server only: logins are part of the mix, not the point of it


# ---- the system under test ------------------------------------------------------


@dataclass
class Target:
    base_url: str
    server_pid: int | None  # the supervisor (or single process), for RSS
    database_url: str | None  # for pg_stat_activity and the final invariant check
    students: list[tuple[str, str]]  # (student number, password)
    process: subprocess.Popen[bytes] | None = None
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # keep cleaning up
                print(f"cleanup failed: {error!r}", file=sys.stderr)


def seed(database_url: str, *, courses: int, students: int, duration: float) -> list[tuple[str, str]]:
    """A semester open for the whole run, its courses, and students; names unique per run."""
    from app.courses.models import Course
    from app.semesters.models import Semester
    from app.students.models import Student

    run = secrets.token_hex(3)
    now = datetime.now(UTC)
    password_hash = hash_password(PASSWORD, rounds=BCRYPT_ROUNDS)
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            semester = Semester(
                name=f"Soak {run}",
                registration_start=now - timedelta(hours=1),
                registration_end=now + timedelta(seconds=duration) + timedelta(hours=2),
            )
            session.add(semester)
            session.flush()
            session.add_all(
                Course(
                    semester_id=semester.id,
                    code=f"SOAK{i}",
                    course_name=f"Soak {run} course {i}",
                    professor="Prof. Soak",
                    schedule="Mon 09:00-10:30",
                    max_capacity=20,
                    reserve_limit=10,
                )
                for i in range(courses)
            )
            numbers = [f"SOAK{run}{i:05d}" for i in range(students)]
            session.add_all(
                Student(student_number=number, password_hash=password_hash, name=f"Soak {number}") for number in numbers
            )
    finally:
        engine.dispose()
    return [(number, PASSWORD) for number in numbers]


def start_own_server(args: argparse.Namespace) -> Target:
    from scripts import migrate

    target = Target(base_url="", server_pid=None, database_url=None, students=[])
    try:
        if args.database_url:
            database_url = normalize_database_url(args.database_url)
        else:
            from app.runtime.embedded_postgres import throwaway

            postgres = throwaway()
            target.cleanups.append(postgres.stop)
            database_url = postgres.create_database("course_reg_soak")
            print(f"embedded PostgreSQL in {postgres.data_dir}")
        migrate.upgrade(database_url)
        target.database_url = database_url
        target.students = seed(database_url, courses=args.courses, students=args.students, duration=args.duration)

        workdir = Path(tempfile.mkdtemp(prefix="course-reg-soak-"))
        target.cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
        (workdir / "metrics").mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ENVIRONMENT": "test",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }
        # The command `make run` serves with: its supervisor replaces a dead worker,
        # which the report counts as a failure (see `replaced_workers`).
        server = LiveServer(workers=args.workers, env=env, log_path=workdir / "server.log", log_level="warning")
        server.start()
        target.process = server.process
        target.server_pid = server.process.pid
        target.base_url = server.base_url
        target.cleanups.append(server.stop)
        print(f"API on {target.base_url}, {args.workers} workers, log in {workdir / 'server.log'}")
        try:
            server.wait_ready()
        except ServerNotReady as error:
            raise SystemExit(str(error)) from None
        return target
    except BaseException:
        target.close()
        raise


def attach_to_server(args: argparse.Namespace) -> Target:
    base_url = f"http://{'[::1]' if args.host == '::1' else args.host}:{args.port}"
    try:
        wait_ready(base_url, timeout=10)
    except ServerNotReady as error:
        raise SystemExit(str(error)) from None
    database_url = args.database_url or os.environ.get("DATABASE_URL")
    if not database_url:
        from scripts.check_invariants import dev_database_url

        database_url = dev_database_url()
    if not database_url:
        print(
            "no database URL (--database-url, DATABASE_URL, or a running `make run` database): "
            "connections will not be counted",
            file=sys.stderr,
        )
    students = [(f"STU{10000 + i}", args.password) for i in range(args.students)]
    return Target(
        base_url=base_url,
        server_pid=listening_root(args.port),
        database_url=normalize_database_url(database_url) if database_url else None,
        students=students,
    )


def listening_root(port: int) -> int | None:
    """The process that owns the server listening on the port: climbing from a
    listener while the parent listens too (uvicorn's supervisor shares its
    socket with the workers), or to the parent of several listeners (workers
    that each bind the port with SO_REUSEPORT)."""

    def listens(process: psutil.Process) -> bool:
        try:
            return any(
                conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
                for conn in process.net_connections(kind="tcp")
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    pids = sorted(
        {
            conn.pid
            for conn in psutil.net_connections(kind="tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
        }
    )
    if not pids:
        print(f"no process found listening on port {port}: memory will not be sampled", file=sys.stderr)
        return None
    process = psutil.Process(pids[0])
    while (parent := process.parent()) is not None and listens(parent):
        process = parent
    parent = process.parent()
    if parent is not None and sum(listens(child) for child in parent.children()) > 1:
        process = parent
    pid: int = process.pid
    return pid


# ---- the load -------------------------------------------------------------------

# An HTTP status, or "error" when no response came (a connection error, a timeout).
Status = int | str


def failed(status: Status) -> bool:
    """A server error or no answer at all: what a soak must not see."""
    return status == "error" or (isinstance(status, int) and status >= 500)


@dataclass
class Tally:
    """What the clients saw since the last sample (and in total)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[Status] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    total: Counter[Status] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, label: str, status: Status, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.total[status] += 1
            self.latencies.append(seconds)
            if failed(status) and len(self.failures) < 20:
                self.failures.append(f"{label}: {status}")

    def take(self) -> tuple[Counter[Status], list[float]]:
        with self.lock:
            statuses, latencies = self.statuses, self.latencies
            self.statuses, self.latencies = Counter(), []
        return statuses, latencies


class Client(threading.Thread):
    """One simulated student session after another: log in, then register, drop and read."""

    def __init__(
        self,
        index: int,
        clients: int,
        target: Target,
        course_ids: list[int],
        semester_id: int,
        tally: Tally,
        stop: threading.Event,
        pace: float,
        login_share: float,
    ):
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.rng = random.Random(index)
        # Students of its own: each logs in once, then only on --login-share or an expired token.
        self.pool = target.students[index::clients] or target.students
        self.target, self.course_ids, self.semester_id = target, course_ids, semester_id
        self.tally, self.stop, self.pace, self.login_share = tally, stop, pace, login_share
        self.tokens: dict[str, str] = {}

    def run(self) -> None:
        with httpx.Client(base_url=self.target.base_url, timeout=30) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                try:
                    self.one_request(http)
                except httpx.HTTPError as error:
                    self.tally.add(type(error).__name__, "error", 0.0)
                if self.pace:
                    next_at += self.pace
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)
                    else:
                        next_at = time.monotonic()  # fell behind: do not burst to catch up

    def request(self, http: httpx.Client, label: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.tally.add(label, "error", time.perf_counter() - started)
            raise
        self.tally.add(label, response.status_code, time.perf_counter() - started)
        return response

    def token(self, http: httpx.Client, number: str, password: str, *, fresh: bool = False) -> str | None:
        if fresh or number not in self.tokens:
            response = self.request(
                http, "login", "POST", "/auth/login", json={"student_number": number, "password": password}
            )
            if response.status_code != 200:
                return None
            self.tokens[number] = response.json()["access_token"]
        return self.tokens[number]

    def one_request(self, http: httpx.Client) -> None:
        number, password = self.rng.choice(self.pool)
        roll = self.rng.random()
        if roll < self.login_share:
            self.token(http, number, password, fresh=True)
            return
        token = self.token(http, number, password)
        if token is None:
            return
        auth = {"Authorization": f"Bearer {token}"}
        course_id = self.rng.choice(self.course_ids)
        roll = self.rng.random()
        if roll < 0.35:
            response = self.request(http, "register", "POST", f"/courses/{course_id}/register", headers=auth)
        elif roll < 0.60:
            response = self.request(http, "drop", "POST", f"/courses/{course_id}/drop", headers=auth)
        elif roll < 0.75:
            response = self.request(
                http, "my-courses", "GET", f"/semesters/{self.semester_id}/my-courses", headers=auth
            )
        elif roll < 0.90:
            response = self.request(http, "course", "GET", f"/courses/{course_id}")
        else:
            response = self.request(
                http, "courses", "GET", f"/semesters/{self.semester_id}/courses", params={"limit": 50}
            )
        if response.status_code == 401:  # expired token on a long soak: log in again next time
            self.tokens.pop(number, None)


def discover_courses(base_url: str, students: list[tuple[str, str]]) -> tuple[int, list[int]]:
    """The open semester (the soak's own, when it seeded one) and its course ids."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        semesters = http.get("/semesters/", params={"limit": 1000}).raise_for_status().json()
        open_ones = [s for s in semesters if s["is_registration_open"]]
        own = [s for s in open_ones if s["name"].startswith("Soak ")]
        if not (own or open_ones):
            raise SystemExit("no semester is open for registration on this server")
        semester = max(own or open_ones, key=lambda s: s["id"])
        courses = http.get(f"/semesters/{semester['id']}/courses", params={"limit": 1000}).raise_for_status().json()
        if not courses:
            raise SystemExit(f"semester {semester['id']} has no courses")
        number, password = students[0]
        login = http.post("/auth/login", json={"student_number": number, "password": password})
        if login.status_code != 200:
            raise SystemExit(f"cannot log in as {number}: {login.status_code} {login.text}")
    return semester["id"], [course["id"] for course in courses]


# ---- sampling -------------------------------------------------------------------


def server_processes(root_pid: int | None) -> list[psutil.Process]:
    if root_pid is None:
        return []
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mib(processes: list[psutil.Process]) -> tuple[float, list[tuple[int, float]]]:
    """Total RSS, and (pid, RSS) of each worker (the processes with most memory
    besides the supervisor; multiprocessing's small resource tracker included)."""
    sizes = []
    for process in processes:
        try:
            sizes.append((process.pid, process.memory_info().rss / 2**20))
        except psutil.NoSuchProcess:
            continue
    return sum(size for _, size in sizes), sizes[1:]


class ConnectionCounter:
    QUERY = """
        SELECT count(*),
               count(*) FILTER (WHERE state = 'active'),
               count(*) FILTER (WHERE state = 'idle'),
               count(*) FILTER (WHERE state LIKE 'idle in transaction%%')
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
    """

    def __init__(self, database_url: str | None):
        self.connection: psycopg2.extensions.connection | None = None
        if database_url:
            dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
            self.connection = psycopg2.connect(dsn)
            self.connection.autocommit = True

    def sample(self) -> tuple[int, int, int, int] | None:
        if self.connection is None:
            return None
        with self.connection.cursor() as cursor:
            cursor.execute(self.QUERY)
            row = cursor.fetchone()  # counts: always one row, though psycopg2's types allow none
            return None if row is None else tuple(row)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


@dataclass
class Sample:
    elapsed: float
    seconds: float  # since the previous sample
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    rss_total: float
    workers: list[tuple[int, float]]
    connections: tuple[int, int, int, int] | None


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


HEADER = (
    f"{'elapsed':>8} {'req/s':>7} {'5xx+err':>7} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8}  "
    f"{'workers (pid:MiB)':<34} {'db conns (active/idle/idle-tx)':<30}"
)


def print_row(sample: Sample) -> None:
    workers = " ".join(f"{pid}:{size:.0f}" for pid, size in sample.workers[:4]) or "-"
    if sample.connections is None:
        conns = "-"
    else:
        total, active, idle, in_tx = sample.connections
        conns = f"{total} ({active}/{idle}/{in_tx})"
    print(
        f"{sample.elapsed:8.0f} {sample.requests / sample.seconds:7.1f} {sample.failures:7d} {sample.p50_ms:7.1f} "
        f"{sample.p99_ms:7.1f} {sample.rss_total:8.1f}  {workers:<34} {conns:<30}",
        flush=True,
    )


# ---- verdict --------------------------------------------------------------------


@dataclass
class Trend:
    name: str
    first: float
    last: float
    allowed: float

    @property
    def flat(self) -> bool:
        return self.last - self.first <= self.allowed

    def __str__(self) -> str:
        change = self.last - self.first
        relative = f" ({change / self.first:+.1%})" if self.first else ""
        verdict = "flat" if self.flat else "GROWING"
        return (
            f"{self.name}: first third {self.first:.1f}, last third {self.last:.1f}, "
            f"change {change:+.1f}{relative}, allowed +{self.allowed:.1f}: {verdict}"
        )


def trend(name: str, values: list[float], *, relative: float, absolute: float) -> Trend | None:
    if len(values) < 3:
        return None
    third = len(values) // 3
    first = statistics.fmean(values[:third])
    last = statistics.fmean(values[-third:])
    return Trend(name, first, last, max(first * relative, absolute))


def slope_per_minute(samples: list[Sample], values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    times = [sample.elapsed / 60 for sample in samples]
    return statistics.linear_regression(times, values).slope


def check_database(database_url: str | None) -> bool | None:
    if not database_url:
        return None
    from app.registrations.invariants import audit

    engine = create_engine(database_url)
    try:
        report = audit(engine)
    finally:
        engine.dispose()
    print(
        f"invariants: {report.courses_checked} courses, {report.registrations_checked} registrations, "
        f"{len(report.violations)} violations"
    )
    for violation in report.violations[:10]:
        print(f"  {violation}")
    return report.ok


# ---- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples (default 10)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60,
        help="seconds left out of the comparison (default 60, at most a fifth of --duration)",
    )
    parser.add_argument("--rate", type=float, default=100, help="requests per second in all (0: as fast as possible)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--login-share",
        type=float,
        help="share of requests that are fresh logins (default 0.02; 0.005 with --port, "
        "where each costs a full bcrypt hash)",
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.10,
        help="allowed RSS growth, last third vs first third (default 0.10 = 10%%)",
    )
    parser.add_argument("--rss-slack-mib", type=float, default=8, help="RSS growth always allowed (default 8 MiB)")
    parser.add_argument("--max-conn-growth", type=float, default=0.25, help="allowed growth of connections")
    parser.add_argument("--conn-slack", type=float, default=2, help="connections of growth always allowed")
    parser.add_argument(
        "--max-error-rate", type=float, default=0.0, help="allowed share of 5xx and connection errors (default 0)"
    )
    own = parser.add_argument_group("own server (default)")
    own.add_argument("--workers", type=int, default=2)
    own.add_argument("--courses", type=int, default=40)
    own.add_argument(
        "--students", type=int, help="students to seed (default 400), or with --port to log in as (default 40)"
    )
    own.add_argument(
        "--database-url",
        help="an existing PostgreSQL instead of an embedded one (with --port: where to count connections)",
    )
    existing = parser.add_argument_group("an API already running on this machine")
    existing.add_argument("--port", type=int, help="drive the API listening on this port instead of starting one")
    existing.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    existing.add_argument("--password", default="test123", help="the demo students' password")
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error(f"--host must be this machine ({', '.join(sorted(LOOPBACK))}): a soak is never aimed elsewhere")
    if args.duration <= 0 or args.interval <= 0 or args.clients <= 0:
        parser.error("--duration, --interval and --clients must be positive")
    args.warmup = min(args.warmup, args.duration / 5)
    if args.students is None:
        args.students = 40 if args.port else 400
    if args.login_share is None:
        args.login_share = 0.005 if args.port else 0.02
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = attach_to_server(args) if args.port else start_own_server(args)
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    counter = None
    try:
        semester_id, course_ids = discover_courses(target.base_url, target.students)
        counter = ConnectionCounter(target.database_url)
        tally, stop = Tally(), threading.Event()
        pace = args.clients / args.rate if args.rate > 0 else 0.0
        clients = [
            Client(i, args.clients, target, course_ids, semester_id, tally, stop, pace, args.login_share)
            for i in range(args.clients)
        ]
        print(
            f"soak: {args.duration:.0f} s against {target.base_url}, {args.clients} clients at "
            f"{args.rate or 'max'} req/s, {len(course_ids)} courses, {len(target.students)} students; "
            f"sampling every {args.interval:.0f} s, warm-up {args.warmup:.0f} s"
        )
        print(HEADER)
        started = time.monotonic()
        for client in clients:
            client.start()
        samples: list[Sample] = []
        deadline = started + args.duration
        next_sample = started + args.interval
        try:
            while True:
                time.sleep(max(0.0, min(next_sample, deadline) - time.monotonic()))
                now = time.monotonic()
                if target.process is not None and target.process.poll() is not None:
                    print(f"the API exited with status {target.process.returncode}", file=sys.stderr)
                    break
                statuses, latencies = tally.take()
                total, workers = rss_mib(server_processes(target.server_pid))
                sample = Sample(
                    elapsed=now - started,
                    seconds=now - started - (samples[-1].elapsed if samples else 0.0),
                    requests=sum(statuses.values()),
                    failures=sum(n for s, n in statuses.items() if failed(s)),
                    p50_ms=percentile(latencies, 0.50) * 1000,
                    p99_ms=percentile(latencies, 0.99) * 1000,
                    rss_total=total,
                    workers=workers,
                    connections=counter.sample(),
                )
                samples.append(sample)
                print_row(sample)
                if now >= deadline:
                    break
                next_sample += args.interval
        except KeyboardInterrupt:
            print("interrupted: judging the samples so far")
        stop.set()
        for client in clients:
            client.join(timeout=35)
        return report(args, target, tally, samples)
    finally:
        if counter is not None:
            counter.close()
        target.close()


def replaced_workers(samples: list[Sample]) -> list[int]:
    """Server processes that appeared after the first sample: replacements of dead workers."""
    if not samples:
        return []
    first = {pid for pid, _ in samples[0].workers}
    return sorted({pid for sample in samples[1:] for pid, _ in sample.workers} - first)


def report(args: argparse.Namespace, target: Target, tally: Tally, samples: list[Sample]) -> int:
    print()
    requests = sum(tally.total.values())
    failures = sum(n for s, n in tally.total.items() if failed(s))
    print(
        f"requests: {requests}, by status: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(tally.total.items(), key=str))
    )
    for failure in tally.failures:
        print(f"  failed: {failure}")
    judged = [sample for sample in samples if sample.elapsed > args.warmup]
    ok = True
    rss = trend(
        "RSS of the server processes (MiB)",
        [s.rss_total for s in judged],
        relative=args.max_rss_growth,
        absolute=args.rss_slack_mib,
    )
    unsampled = sum(not s.rss_total for s in judged)
    if rss is None:
        print("RSS: too few samples after the warm-up to judge (or no process to sample)")
        ok = False
    elif unsampled:
        # Nothing measured is not "flat": a soak that saw no memory proves nothing.
        print(f"RSS: not sampled in {unsampled} of {len(judged)} samples (no server process found)")
        ok = False
    else:
        print(f"{rss}; slope {slope_per_minute(judged, [s.rss_total for s in judged]):+.2f} MiB/min")
        ok &= rss.flat
    connection_counts = [float(s.connections[0]) for s in judged if s.connections is not None]
    if connection_counts and len(connection_counts) < len(judged):
        print(f"connections: not counted in {len(judged) - len(connection_counts)} of {len(judged)} samples")
        ok = False
    elif connection_counts:
        conns = trend(
            "database connections", connection_counts, relative=args.max_conn_growth, absolute=args.conn_slack
        )
        if conns is None:
            print("connections: too few samples after the warm-up to judge")
            ok = False
        else:
            print(f"{conns}; max {max(connection_counts):.0f}")
            ok &= conns.flat
    else:
        print("connections: not counted (no database URL)")
        ok = False
    replaced = replaced_workers(samples)
    if replaced:
        # The supervisor replaces a dead worker, so the service kept answering; a
        # process that dies under a steady, modest load is still a failure.
        print(f"server processes replaced during the soak (a worker died): {', '.join(map(str, replaced))}")
        ok = False
    error_rate = failures / requests if requests else 1.0
    print(f"5xx and connection errors: {failures} of {requests} ({error_rate:.3%}), allowed {args.max_error_rate:.3%}")
    ok &= requests > 0 and error_rate <= args.max_error_rate
    invariants = check_database(target.database_url)
    if invariants is False:
        ok = False
    print("verdict: " + ("PASS: memory and connections flat, no server errors" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
