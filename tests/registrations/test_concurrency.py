"""Real concurrency: threads on separate connections, and HTTP against two server processes.

Nothing here is mocked or serialised by the test itself: a barrier releases all
threads at once, and only PostgreSQL's course-row lock keeps them in order.
"""

import random
from collections import Counter

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import DomainError
from app.registrations import service
from app.registrations.models import CourseRegistration, RegistrationStatus
from app.semesters.models import Semester
from tests.support.concurrency import run_all_at_once
from tests.support.database import assert_invariants


def registration_rows(engine, course_id):
    with Session(engine) as session:
        return session.execute(
            select(CourseRegistration.student_id, CourseRegistration.status, CourseRegistration.reserve_position).where(
                CourseRegistration.course_id == course_id
            )
        ).all()


def window_now(engine, course):
    with Session(engine) as session:
        semester = session.get(Semester, course.semester_id)
        return semester.registration_start + (semester.registration_end - semester.registration_start) / 2


def test_hundred_students_race_for_five_seats_and_ten_reserve_places(engine, factory):
    course = factory.course(capacity=5, reserve_limit=10)
    students = factory.students(100)
    now = window_now(engine, course)

    def attempt(student):
        with Session(engine) as session:
            try:
                result = service.register(session, student_id=student.id, course_id=course.id, now=now)
                return result.status.value, result.reserve_position
            except DomainError as error:
                return error.code, None

    outcomes = run_all_at_once(attempt, students)

    assert Counter(status for status, _ in outcomes) == {"ENROLLED": 5, "RESERVED": 10, "COURSE_FULL": 85}
    assert sorted(position for status, position in outcomes if status == "RESERVED") == list(range(1, 11))
    rows = registration_rows(engine, course.id)
    assert Counter(row.status for row in rows) == {RegistrationStatus.ENROLLED: 5, RegistrationStatus.RESERVED: 10}
    # What each student was told is exactly what the database holds.
    told = {
        student.id: outcome for student, outcome in zip(students, outcomes, strict=True) if outcome[0] != "COURSE_FULL"
    }
    assert {row.student_id: (row.status.value, row.reserve_position) for row in rows} == told
    assert_invariants(engine)


def test_interleaved_registers_and_drops_keep_every_invariant(engine, factory):
    course = factory.course(capacity=5, reserve_limit=10)
    students = factory.students(40)
    now = window_now(engine, course)
    last_acknowledged: dict = {}
    promotions = Counter()

    def churn(student):
        rng = random.Random(student.id.int)
        with Session(engine) as session:
            for _ in range(12):
                try:
                    if rng.random() < 0.6:
                        service.register(session, student_id=student.id, course_id=course.id, now=now)
                        last_acknowledged[student.id] = "registered"
                    else:
                        result = service.drop(session, student_id=student.id, course_id=course.id, now=now)
                        last_acknowledged[student.id] = "dropped"
                        if result.promoted_student_id is not None:
                            promotions[result.promoted_student_id] += 1
                except DomainError as error:
                    assert error.code in {"ALREADY_REGISTERED", "COURSE_FULL", "NOT_REGISTERED"}, error.code  # noqa: PT017

    run_all_at_once(churn, students)

    rows = registration_rows(engine, course.id)
    registered = {student_id for student_id, state in last_acknowledged.items() if state == "registered"}
    # Nothing acknowledged was lost, and nothing unacknowledged appeared.
    assert {row.student_id for row in rows} == registered
    enrolled = sum(row.status == RegistrationStatus.ENROLLED for row in rows)
    assert enrolled == min(5, len(rows))
    assert sorted(row.reserve_position for row in rows if row.reserve_position) == list(
        range(1, len(rows) - enrolled + 1)
    )
    assert promotions, "the churn should have promoted someone"
    assert_invariants(engine)


@pytest.mark.live_server
def test_race_through_http_against_two_server_processes(live_server, engine, factory):
    assert len(live_server.worker_pids()) == 2
    course = factory.course(capacity=5, reserve_limit=10)
    students = factory.students(100)
    tokens = {student.id: factory.token(student) for student in students}

    def attempt(student):
        with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
            response = client.post(
                f"/courses/{course.id}/register", headers={"Authorization": f"Bearer {tokens[student.id]}"}
            )
        body = response.json()
        return response.status_code, body.get("status") or body.get("code"), body.get("reserve_position")

    outcomes = run_all_at_once(attempt, students, threads=100)

    assert Counter((code, outcome) for code, outcome, _ in outcomes) == {
        (200, "ENROLLED"): 5,
        (200, "RESERVED"): 10,
        (409, "COURSE_FULL"): 85,
    }
    assert sorted(position for _, outcome, position in outcomes if outcome == "RESERVED") == list(range(1, 11))
    assert len(registration_rows(engine, course.id)) == 15
    assert_invariants(engine)


@pytest.mark.live_server
def test_concurrent_drops_through_http_promote_each_reserved_student_once(live_server, engine, factory):
    course = factory.course(capacity=5, reserve_limit=10)
    students = factory.students(15)
    now = window_now(engine, course)
    with Session(engine) as session:
        for student in students:  # 5 enrolled, then reserve positions 1..10
            service.register(session, student_id=student.id, course_id=course.id, now=now)
    enrolled, reserved = students[:5], students[5:]

    def drop(student):
        with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
            response = client.post(
                f"/courses/{course.id}/drop", headers={"Authorization": f"Bearer {factory.token(student)}"}
            )
        assert response.status_code == 200, response.text
        return response.json()

    results = run_all_at_once(drop, enrolled)

    # The five freed seats went to reserve positions 1..5, in order, each exactly once.
    promoted = [result["promoted_student_id"] for result in results]
    assert sorted(promoted) == sorted(str(student.id) for student in reserved[:5])
    assert all(result["promoted_from_position"] == 1 for result in results)
    rows = {row.student_id: row for row in registration_rows(engine, course.id)}
    assert [rows[s.id].reserve_position for s in reserved[5:]] == [1, 2, 3, 4, 5]
    assert_invariants(engine)
