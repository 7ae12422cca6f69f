"""A registrar's changes to a course in the middle of the rush: a capacity raise
promotes the reserve list's head first come first served, in the same
transaction; a cancel ends every registration and refuses new ones. Against
real PostgreSQL, alone and during a rush of many threads."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.registrations import service
from app.registrations.errors import CapacityBelowEnrolled, CourseCancelled, ReserveBelowReserved
from app.registrations.invariants import check_invariants

REGISTRAR = service.WriteContext(now=datetime.now(UTC), actor="staff:registrar")


def registrations(engine, course_id):
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT student_id, status, reserve_position FROM course_registrations WHERE course_id = :c "
                "ORDER BY status, reserve_position"
            ),
            {"c": course_id},
        ).all()


def register_all(engine, course, students):
    with Session(engine) as session:
        for student in students:
            service.register(session, student_id=student.id, course_id=course.id, now=datetime.now(UTC))


def test_raising_capacity_promotes_the_reserve_head_first_come_first_served(engine, factory):
    course = factory.course(capacity=2, reserve_limit=5)
    students = factory.students(6)
    register_all(engine, course, students)  # 2 enrolled, 4 reserved in this order
    with Session(engine) as session:
        change = service.change_capacity(
            session, course_id=course.id, max_capacity=5, reserve_limit=None, context=REGISTRAR
        )
    assert (change.promote, change.enrolled_count, change.reserved_count) == (3, 5, 1)
    rows = registrations(engine, course.id)
    enrolled = {row.student_id for row in rows if row.status == "ENROLLED"}
    assert enrolled == {student.id for student in students[:5]}
    assert [(row.student_id, row.reserve_position) for row in rows if row.status == "RESERVED"] == [(students[5].id, 1)]
    with engine.connect() as connection:
        assert check_invariants(connection).ok
        promoted = connection.execute(
            text(
                "SELECT student_id, reserve_position FROM registration_events "
                "WHERE course_id = :c AND event_type = 'PROMOTED' ORDER BY id"
            ),
            {"c": course.id},
        ).all()
    assert [(row.student_id, row.reserve_position) for row in promoted] == [
        (students[2].id, 1),
        (students[3].id, 2),
        (students[4].id, 3),
    ]


def test_an_edit_never_removes_anybody(engine, factory):
    course = factory.course(capacity=2, reserve_limit=3)
    register_all(engine, course, factory.students(4))  # 2 enrolled, 2 reserved
    with Session(engine) as session:
        with pytest.raises(CapacityBelowEnrolled):
            service.change_capacity(session, course_id=course.id, max_capacity=1, reserve_limit=None, context=REGISTRAR)
        with pytest.raises(ReserveBelowReserved):
            service.change_capacity(session, course_id=course.id, max_capacity=None, reserve_limit=1, context=REGISTRAR)
        # Raising capacity by one frees a reserve place, so the limit may now fall to 1.
        service.change_capacity(session, course_id=course.id, max_capacity=3, reserve_limit=1, context=REGISTRAR)
    assert [row.status for row in registrations(engine, course.id)] == ["ENROLLED"] * 3 + ["RESERVED"]


def test_cancel_ends_every_registration_gives_back_credits_and_refuses_new_ones(engine, factory):
    semester = factory.semester()
    course = factory.course(semester, capacity=2, reserve_limit=2, credits=4)
    students = factory.students(4)
    register_all(engine, course, students)
    with Session(engine) as session:
        assert service.cancel_course(session, course_id=course.id, context=REGISTRAR) == 4
        with pytest.raises(CourseCancelled):
            service.register(session, student_id=factory.student().id, course_id=course.id, now=datetime.now(UTC))
    assert registrations(engine, course.id) == []
    with engine.connect() as connection:
        credits = connection.execute(
            text("SELECT credits FROM student_terms WHERE semester_id = :m"), {"m": semester.id}
        ).scalars()
        assert set(credits) == {0}
        cancelled = connection.scalar(
            text("SELECT count(*) FROM registration_events WHERE course_id = :c AND event_type = 'CANCELLED'"),
            {"c": course.id},
        )
        assert cancelled == 4
        assert check_invariants(connection).ok


@pytest.mark.live_server
def test_a_capacity_raise_during_a_rush_promotes_exactly_the_new_seats_in_order(live_server, engine, factory):
    course = factory.course(capacity=10, reserve_limit=200)
    students = factory.students(100)
    barrier = threading.Barrier(101)

    def rush(student):
        barrier.wait(timeout=30)
        return httpx.post(
            f"{live_server.base_url}/courses/{course.id}/register", headers=factory.auth(student), timeout=60
        ).status_code

    def raise_capacity():
        barrier.wait(timeout=30)
        with Session(engine) as session:
            return service.change_capacity(
                session, course_id=course.id, max_capacity=40, reserve_limit=None, context=REGISTRAR
            )

    with ThreadPoolExecutor(max_workers=101) as pool:
        rushed = [pool.submit(rush, student) for student in students]
        change = pool.submit(raise_capacity).result()
        assert {future.result() for future in rushed} == {200}

    rows = registrations(engine, course.id)
    assert sum(row.status == "ENROLLED" for row in rows) == 40
    assert [row.reserve_position for row in rows if row.status == "RESERVED"] == list(range(1, 61))
    with engine.connect() as connection:
        assert check_invariants(connection).ok
        # FIFO: the promoted are exactly the reserve list's head when the raise happened.
        promoted = connection.execute(
            text(
                "SELECT reserve_position FROM registration_events "
                "WHERE course_id = :c AND event_type = 'PROMOTED' ORDER BY id"
            ),
            {"c": course.id},
        ).scalars()
        assert list(promoted) == list(range(1, change.promote + 1))


@pytest.mark.live_server
def test_a_cancel_during_a_rush_leaves_no_registration_behind(live_server, engine, factory):
    course = factory.course(capacity=20, reserve_limit=20)
    students = factory.students(100)
    barrier = threading.Barrier(101)

    def rush(student):
        barrier.wait(timeout=30)
        response = httpx.post(
            f"{live_server.base_url}/courses/{course.id}/register", headers=factory.auth(student), timeout=60
        )
        return response.status_code, response.json().get("code")

    def cancel():
        barrier.wait(timeout=30)
        with Session(engine) as session:
            return service.cancel_course(session, course_id=course.id, context=REGISTRAR)

    with ThreadPoolExecutor(max_workers=101) as pool:
        rushed = [pool.submit(rush, student) for student in students]
        pool.submit(cancel).result()
        outcomes = {future.result() for future in rushed}
    assert outcomes <= {(200, None), (409, "COURSE_FULL"), (409, "COURSE_CANCELLED")}
    assert registrations(engine, course.id) == []
    with engine.connect() as connection:
        assert check_invariants(connection).ok
        counters = connection.execute(
            text("SELECT enrolled_count, reserved_count FROM courses WHERE id = :c"), {"c": course.id}
        ).one()
        assert tuple(counters) == (0, 0)
