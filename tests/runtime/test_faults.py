"""Faults under load: a worker killed with SIGKILL, PostgreSQL stopped and started
again, and a pile-up behind a course row lock that somebody holds.

Each test drives real HTTP traffic from many threads at a real server, served
the way `make run` serves it (app/runtime/server.py), and then audits the database.
What a client was told is the contract: a 200 is a
promise that the change is in the database; a connection error or a 503 promises
nothing either way (the ledger below tracks that), but must never leave a
half-written registration behind (`check_invariants`).
"""

import contextlib
import os
import random
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import create_db_engine
from app.core.security import hash_password
from app.main import create_app
from app.registrations.models import CourseRegistration
from app.runtime.server import command as serve_command
from bench.live_server import free_port
from scripts import migrate
from tests.support.concurrency import run_all_at_once
from tests.support.database import assert_invariants
from tests.support.environment import PROJECT_ROOT, TEST_ENV, TEST_PASSWORD
from tests.support.factory import Factory
from tests.support.servers import answered_by_worker, start_server

# Generous on purpose (CI machines are small and shared): what these tests rule
# out is a stall, a request waiting on a pool or a lock with no bound.
ANSWERED_WITHIN_S = 10.0
RETRYABLE_CODES = {"DATABASE_UNAVAILABLE", "LOCK_TIMEOUT", "STATEMENT_TIMEOUT", "SERVICE_BUSY"}


# ---- what each client was told ------------------------------------------------


@dataclass
class Answer:
    action: str
    student_id: uuid.UUID | None
    course_id: int | None
    status: int | None  # None: no HTTP answer at all (connection reset, ...)
    code: str | None
    body: object
    retry_after: str | None
    sent_at: float
    seconds: float
    error: str | None = None

    @property
    def answered_at(self) -> float:
        return self.sent_at + self.seconds


def call(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    token: str | None = None,
    action: str = "",
    student_id=None,
    course_id=None,
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sent_at = time.monotonic()
    try:
        response = client.request(method, path, headers=headers)
    except httpx.TransportError as error:
        return Answer(
            action or path,
            student_id,
            course_id,
            None,
            None,
            None,
            None,
            sent_at,
            time.monotonic() - sent_at,
            error=repr(error),
        )
    seconds = time.monotonic() - sent_at
    try:
        body = response.json()
    except ValueError:
        body = response.text
    code = body.get("code") if isinstance(body, dict) else None
    return Answer(
        action or path,
        student_id,
        course_id,
        response.status_code,
        code,
        body,
        response.headers.get("retry-after"),
        sent_at,
        seconds,
    )


def new_client(base_url: str) -> httpx.Client:
    # No keep-alive: every request opens a fresh connection, so requests keep
    # spreading over all workers, including one started to replace a killed one.
    return httpx.Client(base_url=base_url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


@dataclass
class Ledger:
    """What each (student, course) pair must look like in the database, as far as
    the answers tell: "present", "absent", or None when an answer was lost."""

    known: dict = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, answer: Answer) -> None:
        key = (answer.student_id, answer.course_id)
        if answer.status == 200:
            state = "present" if answer.action == "register" else "absent"
        elif answer.code in ("COURSE_FULL", "NOT_REGISTERED"):
            state = "absent"  # both are decided under the course lock, from the rows
        elif answer.code == "ALREADY_REGISTERED":
            state = "present"
        else:
            state = None  # no answer, or a retryable 503: the change may or may not be there
        with self._lock:
            self.answers.append(answer)
            self.known[key] = state

    def statuses(self) -> Counter:
        return Counter((answer.status, answer.code) for answer in self.answers)

    def assert_database_agrees(self, engine) -> int:
        """Every acknowledged registration is there, every acknowledged drop is gone."""
        course_ids = {course_id for _, course_id in self.known}
        with Session(engine) as session:
            rows = {
                (row.student_id, row.course_id)
                for row in session.execute(
                    select(CourseRegistration.student_id, CourseRegistration.course_id).where(
                        CourseRegistration.course_id.in_(course_ids)
                    )
                )
            }
        wrong = [
            (key, state)
            for key, state in self.known.items()
            if state is not None and (key in rows) != (state == "present")
        ]
        assert not wrong, f"{len(wrong)} acknowledged answers disagree with the database: {wrong[:5]}"
        return sum(state is not None for state in self.known.values())


def churn(
    client: httpx.Client,
    ledger: Ledger,
    students,
    tokens,
    course_ids,
    *,
    rounds: int,
    rng: random.Random,
    keep_going=lambda: True,
) -> None:
    """One client: for each of its students in turn, register or drop on a course."""
    for _ in range(rounds):
        for student in students:
            if not keep_going():
                return
            course_id = rng.choice(course_ids)
            action = "register" if rng.random() < 0.6 else "drop"
            ledger.record(
                call(
                    client,
                    "POST",
                    f"/courses/{course_id}/{action}",
                    token=tokens[student.id],
                    action=action,
                    student_id=student.id,
                    course_id=course_id,
                )
            )


def assert_retryable(answer: Answer) -> None:
    assert answer.status == 503, (answer.action, answer.status, answer.body)
    assert answer.code in RETRYABLE_CODES, answer.body
    assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"not within {timeout} s: {message}")


def ready_status(base_url: str) -> int | None:
    try:
        return httpx.get(f"{base_url}/ready", timeout=ANSWERED_WITHIN_S).status_code
    except httpx.HTTPError:
        return None


# ---- a worker killed mid-rush ----------------------------------------------------

REGISTER_ROUTE = "/courses/{course_id}/register"


@pytest.mark.live_server
@pytest.mark.slow
def test_killing_a_worker_mid_rush_loses_no_acknowledged_registration(database_url, engine, factory, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = start_server(database_url, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    try:
        # Register-only courses: every 200 must be in the database exactly as told.
        steady_courses = [factory.course(capacity=8, reserve_limit=12) for _ in range(2)]
        # Register-and-drop courses: promotions, reserve shifts, counters all move.
        churn_courses = [factory.course(capacity=4, reserve_limit=6) for _ in range(2)]
        students = factory.students(96)
        tokens = {student.id: factory.token(student) for student in students}
        ledger = Ledger()
        clients = 24
        groups = [students[i::clients] for i in range(clients)]
        done = threading.Semaphore(0)

        def client_run(index):
            rng = random.Random(index)
            with new_client(server.base_url) as client:
                for student in groups[index]:
                    course = steady_courses[index % 2]
                    ledger.record(
                        call(
                            client,
                            "POST",
                            f"/courses/{course.id}/register",
                            token=tokens[student.id],
                            action="register",
                            student_id=student.id,
                            course_id=course.id,
                        )
                    )
                    done.release()
                churn(client, ledger, groups[index], tokens, [c.id for c in churn_courses], rounds=4, rng=rng)

        victim, survivor = server.worker_pids()
        at_kill: dict = {}

        def kill_a_worker_once_traffic_flows():
            for _ in range(30):  # after 30 answers: mid-rush, with requests in flight on both workers
                done.acquire(timeout=30)
            at_kill["answered"] = answered_by_worker(metrics_dir, REGISTER_ROUTE)
            at_kill["time"] = time.monotonic()
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_a_worker_once_traffic_flows, daemon=True)
        killer.start()
        run_all_at_once(client_run, list(range(clients)))
        killer.join(timeout=30)
        load_done = time.monotonic()

        # The supervisor replaces the killed worker at once (it pings nobody, so
        # nothing delays it), and the new worker listens beside the survivor.
        def replaced():
            pids = server.listening_worker_pids()
            return len(pids) == 2 and victim not in pids and survivor in pids and pids

        replacement = next(
            pid
            for pid in wait_until(replaced, timeout=30, message="the killed worker's replacement")
            if pid != survivor
        )
        wait_until(lambda: ready_status(server.base_url) == 200, timeout=60, message="/ready after the kill")

        statuses = ledger.statuses()
        lost = [answer for answer in ledger.answers if answer.status is None]
        across_the_kill = [
            a for a in ledger.answers if a.status is not None and a.sent_at < at_kill["time"] < a.answered_at
        ]
        print(
            f"\nkilled worker {victim}: {dict(statuses)}; {len(lost)} requests lost with the worker, "
            f"{len(across_the_kill)} in flight at the kill answered by the survivor; replaced by {replacement} "
            f"and ready {time.monotonic() - load_done:.1f} s after the load ended"
        )
        # Both workers were serving the rush when one was killed mid-request...
        assert at_kill["answered"][victim] > 0 and at_kill["answered"][survivor] > 0, at_kill["answered"]
        assert lost, "no request was in flight on the killed worker"
        # ...and the survivor kept answering requests that were already in flight.
        assert across_the_kill
        # A killed worker loses connections; it never makes the survivor answer 500.
        assert all(status in (None, 200, 409, 404, 503) for status, _ in statuses), statuses
        assert statuses[(200, None)] > 0
        for answer in ledger.answers:
            if answer.status == 503:
                assert_retryable(answer)

        # Register-only courses: each acknowledged registration is there, as it was told.
        with Session(engine) as session:
            rows = {
                (row.student_id, row.course_id): (row.status.value, row.reserve_position)
                for row in session.execute(
                    select(CourseRegistration).where(CourseRegistration.course_id.in_([c.id for c in steady_courses]))
                ).scalars()
            }
        steady_ids = {c.id for c in steady_courses}
        for answer in ledger.answers:
            if answer.course_id in steady_ids and answer.status == 200:
                told = (answer.body["status"], answer.body["reserve_position"])
                assert rows.get((answer.student_id, answer.course_id)) == told, answer
        checked = ledger.assert_database_agrees(engine)
        assert checked > 50
        assert_invariants(engine)

        # Both workers (the survivor and the new one) register normally afterwards;
        # new connections spread over them (20 all landing on one: 1 in 500,000).
        before = answered_by_worker(metrics_dir, REGISTER_ROUTE)
        after = factory.course(capacity=20, reserve_limit=0)
        late = factory.students(20)
        with new_client(server.base_url) as client:
            answers = [call(client, "POST", f"/courses/{after.id}/register", token=factory.token(s)) for s in late]
        assert [a.status for a in answers] == [200] * 20, [a.body for a in answers]
        now_answered = answered_by_worker(metrics_dir, REGISTER_ROUTE)
        assert now_answered[replacement] > 0 and now_answered[survivor] > before[survivor], now_answered
        assert_invariants(engine)
    finally:
        server.stop()
    # SIGTERM still stops everything cleanly, the replacement included.
    assert server.process.returncode == 0
    assert not [pid for pid in (survivor, replacement) if psutil.pid_exists(pid)]


@pytest.mark.live_server
def test_sigint_stops_the_supervisor_and_every_worker(database_url):
    server = start_server(database_url, workers=2)
    workers = server.worker_pids()
    try:
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=20) == 0
        assert not [pid for pid in workers if psutil.pid_exists(pid)]
    finally:
        if server.process.poll() is None:
            server.stop()


@pytest.mark.live_server
def test_supervisor_gives_up_when_workers_keep_dying(database_url):
    """A worker that cannot start (here: an app that does not import) would be
    replaced forever; the supervisor stops after a few deaths instead."""
    command = serve_command("no_such_module:app", host="127.0.0.1", port=free_port(), workers=2, log_level="warning")
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--max-restarts", "3", "--restart-window", "60"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **TEST_ENV, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "giving up" in result.stderr
    assert result.stderr.count("in its place") == 3  # three replacements, then the fourth death ends it
    assert time.monotonic() - started < 60


# ---- PostgreSQL stopped and started again -----------------------------------------


class RestartablePostgres:
    """Stop and start a throwaway embedded server with the options it was started
    with (postmaster.opts): a bare `pg_ctl start` would forget `-k <socket dir>`
    and `-h ""`, and the app's URL would point at a socket that never comes back."""

    def __init__(self, server):
        self.server = server
        argv = shlex.split((server.data_dir / "postmaster.opts").read_text())
        options, skip = [], False
        for arg in argv[1:]:  # argv[0] is the postgres binary; pg_ctl adds -D itself
            if skip:
                skip = False
            elif arg == "-D":
                skip = True
            else:
                options.append(arg)
        self.options = shlex.join(options)

    def stop(self) -> None:
        self.server.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self.server.pg_ctl("-o", self.options, "-l", str(self.server.data_dir / "log"), "start")


@pytest.fixture
def outage_postgres():
    """A separate throwaway PostgreSQL, so stopping it never disturbs other tests."""
    from app.runtime.embedded_postgres import throwaway

    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("stops and starts its own embedded PostgreSQL; not with TEST_DATABASE_URL")
    server = throwaway()
    try:
        yield server
    finally:
        # Already stopped if the test failed mid-outage; the folder goes either way.
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()


@pytest.mark.live_server
@pytest.mark.slow
def test_database_outage_answers_503_with_retry_after_and_recovers_by_itself(outage_postgres, settings):
    url = outage_postgres.create_database("course_reg_outage")
    migrate.upgrade(url)
    engine = create_engine(url, pool_pre_ping=True)  # the test's own pool outlives the restart too
    factory = Factory(engine, settings, hash_password(TEST_PASSWORD, rounds=4))
    courses = [factory.course(capacity=5, reserve_limit=10) for _ in range(3)]
    students = factory.students(48)
    tokens = {student.id: factory.token(student) for student in students}
    postgres = RestartablePostgres(outage_postgres)
    server = start_server(url, workers=2)
    ledger = Ledger()
    reads: list[Answer] = []
    running = threading.Event()
    running.set()
    try:

        def client_run(index):
            rng = random.Random(index)
            with new_client(server.base_url) as client:
                while running.is_set():
                    churn(
                        client,
                        ledger,
                        students[index::8],
                        tokens,
                        [c.id for c in courses],
                        rounds=1,
                        rng=rng,
                        keep_going=running.is_set,
                    )
                    reads.append(call(client, "GET", f"/courses/{rng.choice(courses).id}", action="read"))
                    reads.append(call(client, "GET", "/ready", action="ready"))

        load = threading.Thread(target=run_all_at_once, args=(client_run, list(range(8))), daemon=True)
        load.start()
        time.sleep(1.0)

        stopping = time.monotonic()
        postgres.stop()
        down = time.monotonic()
        time.sleep(1.5)  # the load keeps running against a dead database

        # Explicit probes during the outage: quick 503s that say what is wrong.
        with new_client(server.base_url) as client:
            probes = [
                call(client, "GET", "/ready"),
                call(client, "POST", f"/courses/{courses[0].id}/register", token=tokens[students[0].id]),
                call(client, "POST", f"/courses/{courses[0].id}/drop", token=tokens[students[1].id]),
                call(client, "GET", f"/courses/{courses[0].id}"),
                call(client, "GET", "/semesters/"),
            ]
            health = call(client, "GET", "/health")
        for probe in probes:
            assert_retryable(probe)
            assert probe.code == "DATABASE_UNAVAILABLE", probe.body
            assert probe.seconds < ANSWERED_WITHIN_S, probe
        assert health.status == 200  # liveness touches no database: the process is fine

        starting = time.monotonic()
        postgres.start()
        # Nobody restarts the API: it notices the database is back by itself.
        wait_until(lambda: ready_status(server.base_url) == 200, timeout=30, message="/ready after restart")
        ready_again = time.monotonic()
        time.sleep(1.5)  # let stale pooled connections (if any) surface and be replaced
        settled = time.monotonic()
        time.sleep(1.0)
        running.clear()
        load.join(timeout=60)
        assert not load.is_alive(), "the load did not finish: some request hangs"

        answers = ledger.answers + reads
        statuses = Counter((a.status, a.code) for a in answers)
        during = [a for a in answers if a.sent_at >= down and a.answered_at <= starting]
        after = [a for a in answers if a.sent_at >= settled]
        print(
            f"\noutage: stop took {down - stopping:.2f} s, back after {ready_again - starting:.2f} s; "
            f"{dict(statuses)}; {len(during)} answers during the outage, {len(after)} after recovery"
        )

        assert all(a.status is not None for a in answers), [a.error for a in answers if a.status is None][:3]
        assert max(a.seconds for a in answers) < ANSWERED_WITHIN_S
        assert not [a for a in answers if a.status >= 500 and a.status != 503], statuses
        for answer in answers:
            if answer.status == 503:
                assert_retryable(answer)
        assert during, "the load should have run during the outage"
        for answer in during:
            assert answer.status == 503 and answer.code == "DATABASE_UNAVAILABLE", answer
        assert after and all(a.status != 503 for a in after), Counter((a.status, a.code) for a in after)
        assert any(a.status == 200 and a.action == "register" for a in after)

        ledger.assert_database_agrees(engine)
        assert_invariants(engine)
    finally:
        running.clear()
        server.stop()
        engine.dispose()


# ---- a pile-up behind a held course lock -------------------------------------------


@pytest.mark.live_server
@pytest.mark.slow
@pytest.mark.parametrize(
    ("pool_env", "requests"),
    [
        # Two workers, each with a threadpool of 40 and a pool of 20 + 20: 170 > 2 x (40 + 40).
        pytest.param({}, 170, id="pool-as-large-as-threadpool"),
        # A pool smaller than the threadpool: requests also queue for a connection. 100 > 2 x (40 + 3).
        pytest.param(
            {"DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_SECONDS": "1"},
            100,
            id="pool-smaller-than-threadpool",
        ),
    ],
)
def test_pile_up_on_a_locked_course_answers_retryable_503s_and_never_stalls(
    database_url, engine, factory, pool_env, requests
):
    server = start_server(database_url, workers=2, extra_env={"DB_LOCK_TIMEOUT_MS": "500", **pool_env})
    hot, other = factory.course(capacity=200, reserve_limit=0), factory.course(capacity=50, reserve_limit=0)
    students = factory.students(requests)
    tokens = {student.id: factory.token(student) for student in students}
    bystander = factory.student()
    try:
        with engine.connect() as holder:
            # Somebody sits on the course row: a stuck transaction, a long admin query.
            holder.execute(text("SELECT id FROM courses WHERE id = :id FOR UPDATE"), {"id": hot.id})
            probes: list[Answer] = []

            def probe_meanwhile():
                time.sleep(0.5)  # the pile-up is queued by now
                with new_client(server.base_url) as client:
                    probes.append(call(client, "GET", "/ready", action="ready"))
                    probes.append(call(client, "GET", f"/courses/{other.id}", action="read other course"))
                    probes.append(
                        call(
                            client,
                            "POST",
                            f"/courses/{other.id}/register",
                            token=factory.token(bystander),
                            action="register other course",
                        )
                    )

            prober = threading.Thread(target=probe_meanwhile)
            prober.start()
            started = time.monotonic()

            def attempt(student):
                return call(shared, "POST", f"/courses/{hot.id}/register", token=tokens[student.id])

            with httpx.Client(
                base_url=server.base_url,
                timeout=60,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            ) as shared:
                answers = run_all_at_once(attempt, students)
            drained = time.monotonic() - started
            prober.join(timeout=60)
            holder.rollback()

        codes = Counter((a.status, a.code) for a in answers)
        waits = sorted(a.seconds for a in answers)
        print(
            f"\npile-up ({pool_env or 'default pool'}): drained {len(answers)} in {drained:.1f} s "
            f"(each answered in {waits[0]:.2f}..{waits[-1]:.2f} s, median {waits[len(waits) // 2]:.2f}): "
            f"{dict(codes)}; "
            f"probes {[(p.action, p.status, p.code, round(p.seconds, 2)) for p in probes]}"
        )
        for answer in answers:
            assert_retryable(answer)  # nobody got in while the lock was held, and nobody got a 500
            assert answer.seconds < ANSWERED_WITHIN_S, answer
        assert codes[(503, "LOCK_TIMEOUT")] > 0

        # Elsewhere the service kept answering meanwhile: quickly, and never with a 500.
        assert len(probes) == 3
        for probe in probes:
            assert probe.seconds < ANSWERED_WITHIN_S, probe
            if pool_env:
                # A pool smaller than the threadpool may be all in use: then a quick 503.
                assert probe.status == 200 or probe.code == "SERVICE_BUSY", probe
            else:
                assert probe.status == 200, probe
        assert not _row_count(engine, hot.id)

        # The lock is gone: the course works again at once.
        with new_client(server.base_url) as client:
            after = call(client, "POST", f"/courses/{hot.id}/register", token=tokens[students[0].id])
        assert after.status == 200 and after.body["status"] == "ENROLLED", after.body
        assert_invariants(engine)
    finally:
        server.stop()


def _row_count(engine, course_id: int) -> int:
    with Session(engine) as session:
        return len(
            session.execute(select(CourseRegistration.id).where(CourseRegistration.course_id == course_id)).all()
        )


def test_statement_timeout_from_settings_bounds_every_statement(database_url):
    settings = Settings(db_statement_timeout_ms=300, db_lock_timeout_ms=1234)
    engine = create_db_engine(settings, pool_size=1, max_overflow=0)
    try:
        started = time.monotonic()
        with engine.connect() as connection, pytest.raises(OperationalError) as raised:
            connection.execute(text("SELECT pg_sleep(5)"))
        assert raised.value.orig.pgcode == "57014"  # query_canceled: a retryable 503 STATEMENT_TIMEOUT
        assert time.monotonic() - started < 4
        with engine.connect() as connection:
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "1234ms"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("timeouts", "code"),
    [
        # The lock wait gives up first: the course is busy.
        pytest.param({"db_lock_timeout_ms": 300, "db_statement_timeout_ms": 10_000}, "LOCK_TIMEOUT", id="lock"),
        # The statement gives up first, here while it waits for the lock: its own code.
        pytest.param(
            {"db_lock_timeout_ms": 10_000, "db_statement_timeout_ms": 300}, "STATEMENT_TIMEOUT", id="statement"
        ),
    ],
)
def test_a_timed_out_statement_and_a_timed_out_lock_wait_answer_their_own_retryable_503(
    settings, engine, factory, timeouts, code
):
    course, student = factory.course(), factory.student()
    with TestClient(create_app(settings.model_copy(update=timeouts))) as client, engine.connect() as holder:
        holder.execute(text("SELECT id FROM courses WHERE id = :id FOR UPDATE"), {"id": course.id})
        started = time.monotonic()
        response = client.post(f"/courses/{course.id}/register", headers=factory.auth(student))
        waited = time.monotonic() - started
        holder.rollback()
    assert response.status_code == 503, response.json()
    assert response.json() == {"detail": response.json()["detail"], "code": code}
    assert int(response.headers["Retry-After"]) >= 1
    assert waited < 5
    assert not _row_count(engine, course.id)
