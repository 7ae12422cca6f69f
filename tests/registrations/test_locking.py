"""The course lock is on the course row only: one hot course never holds up the rest of its semester.

Another connection holds the lock a registration in progress would hold; the
service runs in real threads on their own connections, against committed rows.
"""

import threading
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.registrations import service
from app.registrations.errors import CourseFull, RegistrationHold
from app.registrations.models import RegistrationStatus

PROMPTLY = 3.0  # seconds; the engine's lock_timeout (5 s) would fail a waiting call later
WAITING = 1.0


class Call(threading.Thread):
    """A service call in its own thread and session; keeps its result or error."""

    def __init__(self, engine, action, **kwargs):
        super().__init__(daemon=True)
        self.engine, self.action, self.kwargs = engine, action, kwargs
        self.result = self.error = None

    def run(self):
        try:
            with Session(self.engine) as session:
                self.result = self.action(session, now=datetime.now(UTC), **self.kwargs)
        except Exception as error:  # reported by the test
            self.error = error

    def finished_within(self, seconds: float) -> bool:
        self.join(timeout=seconds)
        return not self.is_alive()

    def start_and_wait_for(self, holder, *, lock: str) -> None:
        """Start; the call must still wait while `holder` holds `lock`, and end soon after it lets go."""
        self.start()
        assert not self.finished_within(WAITING), f"the call did not wait for {lock}"
        holder.rollback()
        assert self.finished_within(PROMPTLY)


@pytest.fixture
def locked_course(raw_engine, factory):
    """A semester with two courses; the first one's row is locked FOR UPDATE by another connection.

    The holder also takes a share lock on the semester row: harmless to a service
    that locks only the course row, but a service that locked the semester row
    FOR UPDATE (as a bare FOR UPDATE over the course-semester join would) waits for it.
    """
    semester = factory.semester()
    hot, other = factory.course(semester, capacity=5), factory.course(semester, capacity=5)
    with raw_engine.connect() as holder:
        holder.execute(text("SELECT id FROM courses WHERE id = :id FOR UPDATE"), {"id": hot.id})
        holder.execute(text("SELECT id FROM semesters WHERE id = :id FOR SHARE"), {"id": semester.id})
        yield hot, other, holder
        holder.rollback()


def test_registration_for_another_course_of_the_semester_does_not_wait_for_a_locked_course(
    engine, factory, locked_course
):
    _hot, other, _ = locked_course
    call = Call(engine, service.register, student_id=factory.student().id, course_id=other.id)
    call.start()
    assert call.finished_within(PROMPTLY), "registration waited for another course's lock"
    assert call.error is None
    assert call.result.status == RegistrationStatus.ENROLLED


def test_drop_in_another_course_of_the_semester_does_not_wait_for_a_locked_course(engine, factory, raw_engine):
    semester = factory.semester()
    hot, other = factory.course(semester), factory.course(semester)
    student = factory.student()
    with Session(engine) as session:
        service.register(session, student_id=student.id, course_id=other.id, now=datetime.now(UTC))
    with raw_engine.connect() as holder:
        holder.execute(text("SELECT id FROM courses WHERE id = :id FOR UPDATE"), {"id": hot.id})
        holder.execute(text("SELECT id FROM semesters WHERE id = :id FOR SHARE"), {"id": semester.id})
        call = Call(engine, service.drop, student_id=student.id, course_id=other.id)
        call.start()
        assert call.finished_within(PROMPTLY), "drop waited for another course's lock"
        holder.rollback()
    assert call.error is None
    assert call.result.dropped_status == RegistrationStatus.ENROLLED


def test_registration_for_the_locked_course_waits_until_the_lock_is_released(engine, factory, locked_course):
    hot, _, holder = locked_course
    call = Call(engine, service.register, student_id=factory.student().id, course_id=hot.id)
    call.start_and_wait_for(holder, lock="the course lock")
    assert call.error is None
    assert call.result.status == RegistrationStatus.ENROLLED


# ---- refusals are judged before the student's lock ------------------------------------------------
#
# Another connection holds the student's row, as the student's own write in progress
# would. A request for a course this process has seen full is judged first on one
# read without any lock: a refusal writes nothing, so it is answered without waiting;
# whatever may write still queues for the lock.


@contextmanager
def student_locked_elsewhere(raw_engine, student):
    with raw_engine.connect() as holder:
        holder.execute(text("SELECT id FROM students WHERE id = :id FOR NO KEY UPDATE"), {"id": student.id})
        yield holder
        holder.rollback()


def register(engine, student, course):
    with Session(engine) as session:
        return service.register(session, student_id=student.id, course_id=course.id, now=datetime.now(UTC))


def fill_and_see_full(engine, factory, course, places):
    """Take all `places` (seats and reserve list); one more student is refused, as the process sees."""
    for student in factory.students(places):
        register(engine, student, course)
    with pytest.raises(CourseFull):
        register(engine, factory.student(), course)


def error_while_locked_elsewhere(engine, raw_engine, student, action, **kwargs):
    """The call's error, made while another connection holds the student's row; it must not wait."""
    with student_locked_elsewhere(raw_engine, student):
        call = Call(engine, action, student_id=student.id, **kwargs)
        call.start()
        assert call.finished_within(PROMPTLY), "a refusal waited for the student's lock"
    return call.error


@pytest.mark.parametrize("reserve_limit", [0, 2])
def test_a_full_course_is_refused_without_waiting_for_the_students_lock(engine, factory, raw_engine, reserve_limit):
    course = factory.course(capacity=1, reserve_limit=reserve_limit)
    fill_and_see_full(engine, factory, course, 1 + reserve_limit)
    error = error_while_locked_elsewhere(engine, raw_engine, factory.student(), service.register, course_id=course.id)
    assert isinstance(error, CourseFull)


def test_a_rule_refusal_comes_before_a_full_course_without_the_students_lock(engine, factory, raw_engine):
    course, student = factory.course(capacity=1, reserve_limit=0), factory.student()
    fill_and_see_full(engine, factory, course, 1)
    with raw_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO student_holds (student_id, reason) VALUES (:id, 'Unpaid fees')"), {"id": student.id}
        )
    error = error_while_locked_elsewhere(engine, raw_engine, student, service.register, course_id=course.id)
    assert isinstance(error, RegistrationHold)


def test_a_swap_into_a_full_course_is_refused_without_waiting_for_the_students_lock(engine, factory, raw_engine):
    semester = factory.semester()
    full, held = factory.course(semester, capacity=1, reserve_limit=0), factory.course(semester)
    fill_and_see_full(engine, factory, full, 1)
    student = factory.student()
    register(engine, student, held)
    error = error_while_locked_elsewhere(
        engine, raw_engine, student, service.swap, course_id=full.id, drop_course_id=held.id
    )
    assert isinstance(error, CourseFull)


def test_a_registration_that_may_get_a_place_waits_for_the_students_lock(engine, factory, raw_engine):
    course, student = factory.course(capacity=1), factory.student()
    with student_locked_elsewhere(raw_engine, student) as holder:
        call = Call(engine, service.register, student_id=student.id, course_id=course.id)
        call.start_and_wait_for(holder, lock="the student's lock")
    assert call.error is None
    assert call.result.status == RegistrationStatus.ENROLLED


def test_a_course_seen_full_takes_the_next_registration_once_it_has_room(engine, factory):
    course = factory.course(capacity=1, reserve_limit=0)
    first = factory.student()
    register(engine, first, course)
    with pytest.raises(CourseFull):
        register(engine, factory.student(), course)
    with Session(engine) as session:
        service.drop(session, student_id=first.id, course_id=course.id, now=datetime.now(UTC))
    assert register(engine, factory.student(), course).status == RegistrationStatus.ENROLLED
    with pytest.raises(CourseFull):
        register(engine, factory.student(), course)


def test_with_an_idempotency_key_even_a_refusal_waits_for_the_students_lock(engine, factory, raw_engine):
    """A retry's stored answer comes before any refusal, and is read under the student's lock:
    the first attempt may still be in progress, holding it."""
    course = factory.course(capacity=1, reserve_limit=0)
    fill_and_see_full(engine, factory, course, 1)
    student = factory.student()
    with student_locked_elsewhere(raw_engine, student) as holder:
        call = Call(engine, service.register, student_id=student.id, course_id=course.id, idempotency_key="k-1")
        call.start_and_wait_for(holder, lock="the student's lock (and the stored answer behind it)")
    assert isinstance(call.error, CourseFull)


def test_a_refusal_for_a_course_seen_full_costs_one_statement_and_no_transaction(client, factory, statements_by_engine):
    course = factory.course(capacity=1, reserve_limit=0)
    first, second, latecomer = factory.students(3)
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(first)).status_code == 200
    assert all(not autocommit for _, autocommit in statements_by_engine["write"]), "a course not seen full"
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(second)).status_code == 409

    statements_by_engine["write"].clear()
    response = client.post(f"/courses/{course.id}/register", headers=factory.auth(latecomer))
    assert (response.status_code, response.json()["code"]) == (409, "COURSE_FULL")
    assert [autocommit for _, autocommit in statements_by_engine["write"]] == [True]
