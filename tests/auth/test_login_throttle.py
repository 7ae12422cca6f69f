"""Brute-force protection in one process: failed logins are throttled per student
from one client address and per client, with the state in PostgreSQL so that every
worker process sees it. Across two server processes, and the policy's other cases
(slowdown, successful logins): tests/test_login_protection.py."""

import json
import time
import uuid
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import LoginThrottle
from app.core.security import hash_password
from app.main import create_app
from app.students.models import Student
from tests.support.api import login
from tests.support.concurrency import run_all_at_once
from tests.support.environment import TEST_PASSWORD

WINDOW_SECONDS = 2


@pytest.fixture(scope="module")
def throttled_settings(settings):
    return settings.model_copy(
        update={
            "login_failure_window_seconds": WINDOW_SECONDS,
            "login_max_failures_per_client_and_student": 3,
            "login_max_failures_per_client": 6,
        }
    )


def client_from(settings, address):
    """A client with its own address, so tests do not share the per-client count."""
    return TestClient(create_app(settings), client=(address, 40000))


def random_address():
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


@pytest.mark.slow
def test_repeated_failures_for_one_student_from_one_client_are_throttled_until_the_window_ends(
    throttled_settings, factory
):
    student = factory.student()
    with client_from(throttled_settings, random_address()) as client:
        for _ in range(3):
            assert login(client, student.student_number, "wrong").status_code == 401
        blocked = login(client, student.student_number, TEST_PASSWORD)  # even the right password
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "TOO_MANY_LOGIN_ATTEMPTS"
        assert 1 <= int(blocked.headers["Retry-After"]) <= WINDOW_SECONDS

        time.sleep(WINDOW_SECONDS + 0.2)
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200


def test_the_block_is_seen_by_every_worker(throttled_settings, factory):
    student = factory.student()
    address = random_address()
    # Two app instances stand for two worker processes: they share only PostgreSQL.
    with client_from(throttled_settings, address) as worker_a, client_from(throttled_settings, address) as worker_b:
        for client in (worker_a, worker_b, worker_a):
            login(client, student.student_number, "wrong")
        assert login(worker_b, student.student_number, TEST_PASSWORD).status_code == 429


@pytest.mark.slow
def test_many_student_numbers_from_one_client_are_throttled_until_the_window_ends(throttled_settings, factory):
    address = random_address()
    student = factory.student()
    with client_from(throttled_settings, address) as client:
        for _ in range(6):
            assert login(client, f"NOBODY-{uuid.uuid4().hex[:8]}", "guess").status_code == 401
        response = login(client, student.student_number, TEST_PASSWORD)
        assert response.status_code == 429
        assert response.json()["code"] == "TOO_MANY_LOGIN_ATTEMPTS"
        assert 1 <= int(response.headers["Retry-After"]) <= WINDOW_SECONDS
        # Another client is not affected.
        with client_from(throttled_settings, random_address()) as other:
            assert login(other, factory.student().student_number, TEST_PASSWORD).status_code == 200

        time.sleep(WINDOW_SECONDS + 0.2)
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200


def test_successful_logins_do_not_use_up_the_clients_allowance(throttled_settings, factory):
    with client_from(throttled_settings, random_address()) as client:
        for _ in range(10):  # a whole class logging in from one address
            assert login(client, factory.student().student_number, TEST_PASSWORD).status_code == 200
        for _ in range(6):
            assert login(client, f"NOBODY-{uuid.uuid4().hex[:8]}", "guess").status_code == 401
        assert login(client, f"NOBODY-{uuid.uuid4().hex[:8]}", "guess").status_code == 429


def test_attempts_refused_with_429_do_not_count_against_the_other_scope(throttled_settings, factory):
    blocked, other = factory.student(), factory.student()
    with client_from(throttled_settings, random_address()) as client:
        for _ in range(3):
            assert login(client, blocked.student_number, "wrong").status_code == 401
        for _ in range(10):  # refused before any password is checked: the client's count stays at 3
            assert login(client, blocked.student_number, "wrong").status_code == 429
        for _ in range(3):
            assert login(client, other.student_number, "wrong").status_code == 401
        assert (
            login(client, factory.student().student_number, TEST_PASSWORD).status_code == 429
        )  # 6: the client's limit


def test_a_successful_login_clears_the_students_failures_from_that_client(throttled_settings, factory):
    student = factory.student()
    with client_from(throttled_settings, random_address()) as client:
        for _ in range(2):
            login(client, student.student_number, "wrong")
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200
        for _ in range(2):
            assert login(client, student.student_number, "wrong").status_code == 401
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200


def test_a_correct_login_gives_back_only_its_own_place_in_the_students_failures(throttled_settings, factory, engine):
    """Failures from elsewhere keep slowing the student's logins down until their
    window ends; the owner's login neither adds to them nor wipes them."""
    student = factory.student()
    with client_from(throttled_settings, random_address()) as guesser:
        for _ in range(2):
            assert login(guesser, student.student_number, "wrong").status_code == 401
    with client_from(throttled_settings, random_address()) as owner:
        assert login(owner, student.student_number, TEST_PASSWORD).status_code == 200
    assert failures_counted(engine, f"student:{student.student_number}") == 2
    assert failures_counted(engine, f"student-logins:{student.student_number}") == 1


def test_purge_keeps_live_windows_and_drops_ended_ones(session):
    from datetime import UTC, datetime, timedelta

    from app.auth import throttle

    now = datetime.now(UTC)
    window = timedelta(seconds=60)
    kinds = ("pair", "student", "client", "student-logins", "client-logins")
    old = [throttle.ThrottleScope(f"{kind}:OLD-{uuid.uuid4().hex}", 1, window) for kind in kinds]
    live = [throttle.ThrottleScope(f"{kind}:LIVE-{uuid.uuid4().hex}", 1, window) for kind in kinds]
    with session.begin():
        for scope in old:
            throttle.add_attempt(session, scope, now=now - 2 * window)
        for scope in live:
            throttle.add_attempt(session, scope, now=now)
    throttle.purge_stale(session, now=now)
    keys = [scope.key for scope in old + live]
    with session.begin():
        remaining = session.scalars(select(LoginThrottle.scope).where(LoginThrottle.scope.in_(keys))).all()
    assert sorted(remaining) == sorted(scope.key for scope in live)


# ---- guesses in parallel ------------------------------------------------------------
#
# Each guess is checked against a bcrypt hash of real cost, so many requests are
# inside bcrypt at the same moment: a throttle that checks the count before bcrypt
# and adds to it afterwards lets every one of them through.

PARALLEL_GUESSES = 30


@pytest.fixture(scope="module")
def race_settings(settings):
    # A window long enough that a slow, shared machine never sees it end mid-race.
    return settings.model_copy(
        update={
            "login_failure_window_seconds": 120,
            "login_max_failures_per_client_and_student": 3,
            "login_max_failures_per_client": 6,
        }
    )


@pytest.fixture(scope="module")
def costly_hash():
    return hash_password(TEST_PASSWORD, rounds=10)  # about 50 ms per check here


def costly_students(engine, password_hash, count):
    students = [
        Student(student_number=f"SLOW-{uuid.uuid4().hex[:12]}", password_hash=password_hash, name="Slow Hash")
        for _ in range(count)
    ]
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(students)
    return students


def failures_counted(engine, scope):
    with Session(engine) as session:
        return session.scalar(select(LoginThrottle.attempts).where(LoginThrottle.scope == scope))


def pair_scope(student_number, address):
    return "pair:" + json.dumps([student_number, address])


def assert_throttled(responses, *, evaluated, window):
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: evaluated, 429: PARALLEL_GUESSES - evaluated}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "TOO_MANY_LOGIN_ATTEMPTS"
            assert 1 <= int(response.headers["Retry-After"]) <= window


def test_parallel_guesses_for_one_student_from_one_client_check_at_most_the_limit(race_settings, engine, costly_hash):
    (student,) = costly_students(engine, costly_hash, 1)
    address = random_address()
    with client_from(race_settings, address) as client:
        responses = run_all_at_once(
            lambda i: login(client, student.student_number, f"guess-{i}"), range(PARALLEL_GUESSES)
        )
        assert_throttled(responses, evaluated=3, window=120)
        assert failures_counted(engine, pair_scope(student.student_number, address)) == 3
        assert failures_counted(engine, f"student:{student.student_number}") == 3  # refused attempts count nowhere
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 429


def test_parallel_correct_logins_from_one_client_are_never_refused(race_settings, engine, costly_hash):
    """A campus behind one NAT address: far more logins at once than the client's
    failure limit, all with the right password."""
    students = costly_students(engine, costly_hash, PARALLEL_GUESSES)
    address = random_address()
    with client_from(race_settings, address) as client:
        responses = run_all_at_once(lambda student: login(client, student.student_number, TEST_PASSWORD), students)
    assert Counter(response.status_code for response in responses) == {200: PARALLEL_GUESSES}
    assert failures_counted(engine, f"client:{address}") is None


def test_parallel_guesses_from_one_client_all_count_and_then_block_it(race_settings, engine, costly_hash):
    """A client's failures count once they happen: guesses already in progress are
    checked (and each is counted), and the client is refused from then on."""
    students = costly_students(engine, costly_hash, PARALLEL_GUESSES)
    address = random_address()
    with client_from(race_settings, address) as client:
        responses = run_all_at_once(lambda student: login(client, student.student_number, "guess"), students)
        statuses = Counter(response.status_code for response in responses)
        assert set(statuses) <= {401, 429}
        assert statuses[401] >= 6
        assert failures_counted(engine, f"client:{address}") == statuses[401]
        refused = login(client, students[0].student_number, TEST_PASSWORD)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 120


def test_a_client_address_too_long_for_the_scope_column_is_throttled_like_any_other(throttled_settings, factory):
    # Whatever a trusted proxy forwards becomes the client address.
    address = "203.0.113.7, " * 40
    with client_from(throttled_settings, address) as client:
        for _ in range(6):
            assert login(client, f"NOBODY-{uuid.uuid4().hex[:8]}", "guess").status_code == 401
        assert login(client, factory.student().student_number, TEST_PASSWORD).status_code == 429


@pytest.mark.live_server
def test_parallel_guesses_across_two_server_processes_check_at_most_the_limit(
    live_server, settings, engine, costly_hash
):
    """The audit's reproduction: guesses from one address spread over two worker
    processes, which share nothing but PostgreSQL."""
    (student,) = costly_students(engine, costly_hash, 1)
    limit = settings.login_max_failures_per_client_and_student
    with httpx.Client(
        base_url=live_server.base_url,
        timeout=60,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
    ) as http:
        responses = run_all_at_once(
            lambda i: http.post(
                "/auth/login", json={"student_number": student.student_number, "password": f"guess-{i}"}
            ),
            range(PARALLEL_GUESSES),
        )
    assert_throttled(responses, evaluated=limit, window=settings.login_failure_window_seconds)
    assert failures_counted(engine, pair_scope(student.student_number, "127.0.0.1")) == limit
