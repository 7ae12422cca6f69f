"""Brute-force protection: failed logins are throttled per student and per client,
with the state in PostgreSQL so that every worker process sees it."""

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import TEST_PASSWORD

WINDOW_SECONDS = 2


@pytest.fixture(scope="module")
def throttled_settings(settings):
    return settings.model_copy(
        update={
            "login_failure_window_seconds": WINDOW_SECONDS,
            "login_max_failures_per_student": 3,
            "login_max_failures_per_client": 6,
        }
    )


def client_from(settings, address):
    """A client with its own address, so tests do not share the per-client count."""
    return TestClient(create_app(settings), client=(address, 40000))


def random_address():
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def login(client, student_number, password):
    return client.post("/auth/login", json={"student_number": student_number, "password": password})


def test_repeated_failures_for_one_student_are_throttled_until_the_window_ends(throttled_settings, factory):
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


def test_many_student_numbers_from_one_client_are_throttled(throttled_settings, factory):
    address = random_address()
    with client_from(throttled_settings, address) as client:
        for _ in range(6):
            assert login(client, f"NOBODY-{uuid.uuid4().hex[:8]}", "guess").status_code == 401
        response = login(client, factory.student().student_number, TEST_PASSWORD)
        assert response.status_code == 429
    # Another client is not affected.
    with client_from(throttled_settings, random_address()) as other:
        assert login(other, factory.student().student_number, TEST_PASSWORD).status_code == 200


def test_a_successful_login_clears_the_students_failures(throttled_settings, factory):
    student = factory.student()
    with client_from(throttled_settings, random_address()) as client:
        for _ in range(2):
            login(client, student.student_number, "wrong")
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200
        for _ in range(2):
            assert login(client, student.student_number, "wrong").status_code == 401
        assert login(client, student.student_number, TEST_PASSWORD).status_code == 200


def test_purge_keeps_live_blocks_and_drops_ended_windows(session):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from app.auth import throttle
    from app.auth.models import LoginThrottle

    now = datetime.now(UTC)
    window = timedelta(seconds=60)
    old, live = f"student:OLD-{uuid.uuid4().hex}", f"student:LIVE-{uuid.uuid4().hex}"
    with session.begin():
        throttle.record_failure(session, [throttle.ThrottleScope(old, 1)], now=now - 2 * window, window=window)
        throttle.record_failure(session, [throttle.ThrottleScope(live, 1)], now=now, window=window)
    throttle.purge_stale(session, now=now, window=window)
    with session.begin():
        remaining = session.scalars(select(LoginThrottle.scope).where(LoginThrottle.scope.in_([old, live]))).all()
    assert remaining == [live]
