"""The student's rules under real concurrency: requests from many threads to a
server with two worker processes, against real PostgreSQL. A student's
registrations in different courses must not beat the credit limit or the
conflict check by racing each other, and the lock order (the student, then
courses by ascending id) must make deadlocks impossible."""

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from app.registrations.invariants import audit
from app.registrations.rules import parse_meetings
from tests.support.concurrency import run_all_at_once

pytestmark = pytest.mark.live_server

MON_9 = {"day": "MON", "start": "09:00", "end": "10:30"}
MON_10 = {"day": "MON", "start": "10:00", "end": "11:00"}


def _set_max_credits(engine, student, limit):
    with engine.begin() as connection:
        connection.execute(text("UPDATE students SET max_credits = :m WHERE id = :id"), {"m": limit, "id": student.id})


def test_ten_registrations_at_once_cannot_beat_the_credit_limit(live_server, factory, engine):
    semester = factory.semester()
    courses = [factory.course(semester, credits=3) for _ in range(10)]
    student = factory.student()
    _set_max_credits(engine, student, 9)
    headers = factory.auth(student)

    def attempt(course):
        response = httpx.post(f"{live_server.base_url}/courses/{course.id}/register", headers=headers, timeout=30)
        return response.status_code, response.json().get("code")

    outcomes = Counter(run_all_at_once(attempt, courses))
    assert outcomes == {(200, None): 3, (409, "CREDIT_LIMIT_EXCEEDED"): 7}
    with engine.connect() as connection:
        credits = connection.scalar(
            text("SELECT credits FROM student_terms WHERE student_id = :s AND semester_id = :m"),
            {"s": student.id, "m": semester.id},
        )
    assert credits == 9


def test_two_conflicting_courses_at_once_give_exactly_one(live_server, factory):
    for _ in range(5):  # a race is a race: try it a few times
        semester = factory.semester()
        pair = [factory.course(semester, meetings=[MON_9]), factory.course(semester, meetings=[MON_10])]
        headers = factory.auth(factory.student())

        def attempt(course, headers=headers):
            response = httpx.post(f"{live_server.base_url}/courses/{course.id}/register", headers=headers, timeout=30)
            return response.status_code, response.json().get("code")

        outcomes = Counter(run_all_at_once(attempt, pair))
        assert outcomes == {(200, None): 1, (409, "SCHEDULE_CONFLICT"): 1}


def _deadlocks(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


@pytest.mark.slow
def test_a_randomized_rush_of_registers_drops_and_swaps_keeps_every_rule(live_server, factory, engine):
    """2,000+ calls by 50 students over 20 small courses (some conflicting), from many
    threads: no deadlock, no 5xx, and an audit of every course and student rule."""
    semester = factory.semester()
    slots = [MON_9, MON_10, {"day": "TUE", "start": "09:00", "end": "10:30"}, None]
    courses = [
        factory.course(
            semester,
            capacity=3,
            reserve_limit=2,
            credits=random.Random(i).choice([2, 3, 4]),
            meetings=[slots[i % 4]] if slots[i % 4] else [],
        )
        for i in range(20)
    ]
    students = factory.students(50)
    for student in students[::2]:
        _set_max_credits(engine, student, 8)
    tokens = {student.id: factory.auth(student) for student in students}
    deadlocks_before = _deadlocks(engine)
    statuses: Counter[tuple[int, str | None]] = Counter()
    lock = threading.Lock()
    calls_per_thread = 65
    threads = 32

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=live_server.base_url, timeout=60) as http:
            for _ in range(calls_per_thread):
                student = rng.choice(students)
                course, other = rng.sample(courses, 2)
                action = rng.random()
                if action < 0.55:
                    response = http.post(f"/courses/{course.id}/register", headers=tokens[student.id])
                elif action < 0.85:
                    response = http.post(f"/courses/{course.id}/drop", headers=tokens[student.id])
                else:
                    response = http.post(
                        f"/courses/{course.id}/swap", json={"drop_course_id": other.id}, headers=tokens[student.id]
                    )
                body = response.json()
                with lock:
                    statuses[(response.status_code, body.get("code") if response.status_code != 200 else None)] += 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(churn, range(threads)))

    assert sum(statuses.values()) == threads * calls_per_thread >= 2000
    assert not [key for key in statuses if key[0] >= 500], statuses
    assert statuses[(200, None)] > 100, statuses  # and the rest were refusals the rules explain
    assert _deadlocks(engine) == deadlocks_before

    report = audit(engine)
    assert report.ok, report.violations
    with engine.connect() as connection:
        # Every student's credit counter is the sum of their registrations' credits, and within their limit.
        rows = connection.execute(
            text(
                "SELECT t.student_id, t.credits, COALESCE(sum(r.credits), 0) AS registered, "
                "COALESCE(st.max_credits, 18) AS max_credits "
                "FROM student_terms t JOIN students st ON st.id = t.student_id "
                "LEFT JOIN course_registrations r ON r.student_id = t.student_id "
                "AND r.course_id IN (SELECT id FROM courses WHERE semester_id = :m) "
                "WHERE t.semester_id = :m GROUP BY t.student_id, t.credits, st.max_credits"
            ),
            {"m": semester.id},
        ).all()
        for row in rows:
            assert row.credits == row.registered, row
            assert row.credits <= row.max_credits, row
        # No two overlapping meetings among a student's registrations.
        held = connection.execute(
            text(
                "SELECT r.student_id, c.id, c.meetings FROM course_registrations r "
                "JOIN courses c ON c.id = r.course_id WHERE c.semester_id = :m"
            ),
            {"m": semester.id},
        ).all()
    by_student: dict[object, list[tuple[int, object]]] = {}
    for student_id, course_id, meetings in held:
        by_student.setdefault(student_id, []).append((course_id, parse_meetings(meetings)))
    for registrations in by_student.values():
        for i, (first_id, first) in enumerate(registrations):
            for second_id, second in registrations[i + 1 :]:
                assert not any(a.overlaps(b) for a in first for b in second), (first_id, second_id)
