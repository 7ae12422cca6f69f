"""The local cluster (scripts/cluster.py): HAProxy, three API nodes, a primary and its
synchronous standby, all real processes on 127.0.0.1; faults, then the database audited.

What a client was told is the contract: a 200 is a promise that the registration is in
the database (on whichever server is the primary by then); a connection error, a 502 or
a 503 promises nothing either way, and a client retries it with the same
Idempotency-Key, so that it ends with exactly one registration. Never a 500.

One cluster for the module (about 10 s to make); the tests run in file order and the last
one fails the primary over, leaving pg2 the primary and pg1 its standby.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text

from app.core.config import Settings
from app.core.security import hash_password
from app.registrations.models import CourseRegistration
from scripts import cluster
from tests.support.concurrency import run_all_at_once
from tests.support.database import assert_invariants
from tests.support.environment import PROJECT_ROOT, TEST_ENV, TEST_PASSWORD
from tests.support.factory import Factory

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.live_server]

RETRYABLE_CODES = {"DATABASE_UNAVAILABLE", "LOCK_TIMEOUT", "STATEMENT_TIMEOUT", "SERVICE_BUSY"}
# Every node with a short pool wait: during a failover a request fails fast and is retried.
CLUSTER_ENV = {**TEST_ENV, "DB_POOL_TIMEOUT_SECONDS": "3", "DB_STATEMENT_TIMEOUT_MS": "5000"}


@pytest.fixture(scope="module")
def layout() -> Iterator[cluster.Layout]:
    if cluster.shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        pytest.fail("haproxy is not installed: `make test-cluster` installs it (apt-get install haproxy)")
    # Not under pytest's own temporary folder: the servers run as another user, and any
    # pytest process that starts meanwhile makes /tmp/pytest-of-<user> private again.
    root = Path(tempfile.mkdtemp(prefix="course-reg-cluster-"))
    os.chmod(root, 0o755)
    layout = cluster.Layout.with_free_ports(root, nodes=3, workers=1)
    cluster.up(layout, extra_env=CLUSTER_ENV, seed=False)
    try:
        yield layout
    finally:
        cluster.down(layout, purge=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def primary_engine(layout) -> Iterator[Engine]:
    """Through the multi-host URL: after the failover it reaches the new primary too."""
    engine = create_engine(Settings(database_url=layout.database_url()).database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def cluster_factory(layout, primary_engine) -> Factory:
    settings = Settings(
        _env_file=None, database_url=layout.database_url(), **{k.lower(): v for k, v in CLUSTER_ENV.items()}
    )
    return Factory(primary_engine, settings, hash_password(TEST_PASSWORD, rounds=4))


# ---- clients ---------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (connection refused or reset)
    code: str | None
    retry_after: str | None
    at: float  # time.monotonic() when answered


def post(url: str, headers: dict[str, str]) -> Answer:
    try:
        # A fresh connection per request: HAProxy spreads them over the nodes (round robin).
        response = httpx.post(url, headers=headers, timeout=30)
    except httpx.TransportError:
        return Answer(None, None, None, time.monotonic())
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    return Answer(response.status_code, code, response.headers.get("retry-after"), time.monotonic())


def settled(answer: Answer) -> bool:
    """A final answer: success or a refusal of the rules, not something to retry."""
    return answer.status is not None and answer.status < 500


def register_until_settled(url: str, token: str, *, deadline_s: float = 90.0) -> list[Answer]:
    """One student's registration, retried with the same Idempotency-Key until settled."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    answers = [post(url, headers)]
    give_up = time.monotonic() + deadline_s
    while not settled(answers[-1]) and time.monotonic() < give_up:
        time.sleep(0.1 + random.random() * 0.2)
        answers.append(post(url, headers))
    return answers


def registrations_of(engine: Engine, course_id: int) -> Counter[uuid.UUID]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(CourseRegistration.student_id).where(CourseRegistration.course_id == course_id)
        ).scalars()
        return Counter(rows)


def assert_every_student_settled_once(per_student: dict[uuid.UUID, list[Answer]], engine, course_id) -> None:
    stored = registrations_of(engine, course_id)
    assert max(stored.values(), default=1) == 1, "a student registered twice"
    for student_id, answers in per_student.items():
        final = answers[-1]
        assert settled(final), (student_id, answers)
        assert final.code != "ALREADY_REGISTERED", "a retry was not recognised by its Idempotency-Key"
        if final.status == 200:
            assert stored[student_id] == 1, f"acknowledged registration of {student_id} is missing"
        else:
            assert final.code == "COURSE_FULL" and stored[student_id] == 0, (student_id, answers)
        for answer in answers:
            assert answer.status != 500, answers
            if answer.status == 503:
                assert answer.code in RETRYABLE_CODES and answer.retry_after, answer


def answered_by_node(layout) -> dict[str, int]:
    """Per API node, the answers HAProxy has passed on from it so far (2xx and 4xx)."""
    return {
        name: int(row["hrsp_2xx"] or 0) + int(row["hrsp_4xx"] or 0)
        for name, row in cluster.haproxy_stats(layout).items()
    }


# ---- the proofs ------------------------------------------------------------------


def test_a_rush_through_haproxy_fills_the_course_exactly_and_every_node_serves(layout, cluster_factory, primary_engine):
    course = cluster_factory.course(capacity=5, reserve_limit=10)
    students = cluster_factory.students(100)
    before = answered_by_node(layout)
    url = f"{layout.base_url}/courses/{course.id}/register"

    answers = run_all_at_once(lambda s: post(url, cluster_factory.auth(s)), students)

    statuses = Counter((answer.status, answer.code) for answer in answers)
    assert statuses[(200, None)] == 15, statuses  # 5 seats + 10 reserve places
    assert statuses[(409, "COURSE_FULL")] == 85, statuses
    assert sum(registrations_of(primary_engine, course.id).values()) == 15
    assert_invariants(primary_engine)
    after = answered_by_node(layout)
    # Every node answered part of the rush (its 200s or its COURSE_FULLs: only 15 of the
    # 100 win a place, and which nodes' requests commit first is up to the race).
    served = {name: after[name] - before.get(name, 0) for name in after}
    assert len(served) == 3 and all(count > 0 for count in served.values()), served


def test_a_node_killed_mid_rush_loses_nothing_and_retries_register_once(layout, cluster_factory, primary_engine):
    course = cluster_factory.course(capacity=40, reserve_limit=20)
    students = cluster_factory.students(80)
    tokens = {student.id: cluster_factory.token(student) for student in students}
    url = f"{layout.base_url}/courses/{course.id}/register"
    victim = 1  # api2
    per_student: dict[uuid.UUID, list[Answer]] = {}

    def client(student) -> None:
        time.sleep(random.random() * 1.5)  # spread over the kill
        per_student[student.id] = register_until_settled(url, tokens[student.id])

    killer = threading.Timer(0.5, os.killpg, args=(layout.api_pids[victim], signal.SIGKILL))
    killer.start()
    run_all_at_once(client, students)
    killer.join()

    assert_every_student_settled_once(per_student, primary_engine, course.id)
    assert sum(1 for answers in per_student.values() if answers[-1].status == 200) == 60
    assert_invariants(primary_engine)
    # The node comes back (as an operator or a process manager would start it) for the next tests.
    layout.api_pids[victim] = cluster.start_node(layout, victim, CLUSTER_ENV)
    cluster.wait_for("the node back", lambda: cluster.ready(layout.node_url(victim)))
    cluster.wait_for("HAProxy using it", lambda: cluster.haproxy_stats(layout)["api2"]["status"] == "UP")


def test_the_catalogue_is_read_on_the_standby_and_my_courses_on_the_primary(layout, cluster_factory, primary_engine):
    semester = cluster_factory.semester()
    courses = [cluster_factory.course(semester, capacity=50) for _ in range(3)]
    catalogue_calls = (
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%FROM courses%' "
        "AND query NOT ILIKE '%FOR UPDATE%' AND query NOT ILIKE '%course_registrations%'"
    )

    def calls(name: str) -> int:
        [(count,)] = cluster.query(layout, name, catalogue_calls, cluster.DATABASE)
        return int(str(count))

    standby_before, primary_before = calls(layout.standby), calls(layout.primary)
    for _ in range(30):
        response = httpx.get(f"{layout.base_url}/semesters/{semester.id}/courses", timeout=10)
        assert response.status_code == 200
        assert {course["id"] for course in response.json()} == {course.id for course in courses}
    assert calls(layout.standby) - standby_before >= 30
    assert calls(layout.primary) - primary_before < 30  # (token checks and writes read courses there)

    # A student who has just registered sees it at once: my-courses reads the primary.
    for student in cluster_factory.students(20):
        course = random.choice(courses)
        headers = cluster_factory.auth(student)
        registered = httpx.post(f"{layout.base_url}/courses/{course.id}/register", headers=headers, timeout=10)
        assert registered.status_code == 200, registered.text
        mine = httpx.get(f"{layout.base_url}/semesters/{semester.id}/my-courses", headers=headers, timeout=10)
        assert [row["course_id"] for row in mine.json()] == [course.id], mine.text


def test_the_primary_killed_mid_rush_fails_over_and_loses_no_acknowledged_registration(
    layout, cluster_factory, primary_engine
):
    course = cluster_factory.course(capacity=60, reserve_limit=20)
    students = cluster_factory.students(100)
    tokens = {student.id: cluster_factory.token(student) for student in students}
    url = f"{layout.base_url}/courses/{course.id}/register"
    node_pids = list(layout.api_pids)
    old_primary = layout.primary
    postmaster = cluster.postmaster_pid(layout, old_primary)
    assert postmaster is not None
    per_student: dict[uuid.UUID, list[Answer]] = {}
    killed_at: list[float] = []

    def client(student) -> None:
        time.sleep(random.random() * 3.0)  # before, during and after the failover
        per_student[student.id] = register_until_settled(url, tokens[student.id])

    def kill_and_fail_over() -> None:
        time.sleep(0.7)
        os.kill(postmaster, signal.SIGKILL)
        killed_at.append(time.monotonic())
        subprocess.run(
            [sys.executable, "-m", "scripts.failover", "--root", str(layout.root)], cwd=PROJECT_ROOT, check=True
        )

    operator = threading.Thread(target=kill_and_fail_over)
    operator.start()
    run_all_at_once(client, students)
    operator.join()

    layout_now = cluster.Layout.load(layout.root)
    assert layout_now.primary != old_primary
    layout.primary = layout_now.primary
    assert_every_student_settled_once(per_student, primary_engine, course.id)
    acknowledged = sum(1 for answers in per_student.values() if answers[-1].status == 200)
    assert acknowledged == 80
    statuses = Counter(answer.status for answers in per_student.values() for answer in answers)
    assert statuses[500] == 0, statuses
    assert_invariants(primary_engine)  # counters, positions, and the event trail replayed
    # Some requests were answered during the outage, and the first write after it came later.
    after_kill = [a for answers in per_student.values() for a in answers if a.at > killed_at[0]]
    assert any(a.status == 503 for a in after_kill), statuses
    first_write = min(a.at for a in after_kill if a.status == 200)
    print(f"\nprimary killed -> first acknowledged write: {first_write - killed_at[0]:.2f} s; answers {dict(statuses)}")

    # The same node processes, never restarted, write to the new primary; the old primary streams from it.
    assert layout.api_pids == node_pids
    for index in range(len(layout.api_ports)):
        student = cluster_factory.student()
        response = httpx.post(
            f"{layout.node_url(index)}/courses/{course.id}/register", headers=cluster_factory.auth(student), timeout=10
        )
        assert response.status_code in (200, 409), response.text  # 409: the reserve list is full
        assert response.json().get("code") in (None, "COURSE_FULL")
    rows = cluster.streaming_standbys(layout, layout.primary)
    assert [row[2] for row in rows] == ["sync"], rows
    with primary_engine.connect() as connection:
        assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
