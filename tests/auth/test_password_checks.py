"""Password checks run on a few low-priority threads of their own, so that a login
storm cannot take every request thread or starve other requests of CPU."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from app.core import security


def test_password_checks_run_at_most_one_per_core_at_lower_priority(monkeypatch):
    password_hash = security.hash_password("secret", rounds=4)
    lock = threading.Lock()
    running = 0
    most_at_once = 0
    niceness_seen = set()
    real_checkpw = bcrypt.checkpw

    def observed_checkpw(password: bytes, hashed: bytes) -> bool:
        nonlocal running, most_at_once
        with lock:
            running += 1
            most_at_once = max(most_at_once, running)
            niceness_seen.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        try:
            threading.Event().wait(0.02)  # long enough for the callers to pile up
            return real_checkpw(password, hashed)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "checkpw", observed_checkpw)
    callers = 4 * (os.cpu_count() or 1)
    with ThreadPoolExecutor(callers) as pool:
        results = list(
            pool.map(lambda i: security.verify_password("secret" if i % 2 else "wrong", password_hash), range(callers))
        )

    assert results == [bool(i % 2) for i in range(callers)]
    assert most_at_once <= (os.cpu_count() or 1)
    assert niceness_seen == {os.getpriority(os.PRIO_PROCESS, 0) + security.PASSWORD_CHECK_NICENESS}


def test_a_password_over_72_bytes_never_matches_and_is_never_hashed(monkeypatch):
    password_hash = security.hash_password("a" * 72, rounds=4)
    monkeypatch.setattr(bcrypt, "checkpw", _must_not_be_called)
    assert security.verify_password("a" * 73, password_hash) is False


def _must_not_be_called(*args):
    raise AssertionError("bcrypt.checkpw must not be called for an over-long password")


def test_a_worker_lets_in_only_its_login_turns_at_once_and_queues_the_rest(client, factory, monkeypatch):
    """A storm waits on the event loop for a turn, holding no request thread and no
    database connection, instead of 200 logins making their throttle writes at once."""
    from app.auth import router as auth_router
    from app.auth import service as auth_service
    from tests.support.environment import TEST_PASSWORD

    lock = threading.Lock()
    in_progress = 0
    most_at_once = 0
    real_authenticate = auth_service.authenticate

    def observed_authenticate(*args, **kwargs):
        nonlocal in_progress, most_at_once
        with lock:
            in_progress += 1
            most_at_once = max(most_at_once, in_progress)
        try:
            threading.Event().wait(0.05)  # long enough for the other logins to pile up
            return real_authenticate(*args, **kwargs)
        finally:
            with lock:
                in_progress -= 1

    monkeypatch.setattr(auth_router.service, "authenticate", observed_authenticate)
    students = factory.students(3 * security.LOGIN_TURNS)

    def log_in(student):
        return client.post(
            "/auth/login", json={"student_number": student.student_number, "password": TEST_PASSWORD}
        ).status_code

    with ThreadPoolExecutor(len(students)) as pool:
        statuses = list(pool.map(log_in, students))

    assert statuses == [200] * len(students)
    assert most_at_once == security.LOGIN_TURNS
