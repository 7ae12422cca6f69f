"""The course lock is on the course row only: one hot course never holds up the rest of its semester.

Another connection holds the lock a registration in progress would hold; the
service runs in real threads on their own connections, against committed rows.
"""

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.registrations import service
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
    call.start()
    assert not call.finished_within(WAITING), "registration did not wait for the course lock"

    holder.rollback()
    assert call.finished_within(PROMPTLY)
    assert call.error is None
    assert call.result.status == RegistrationStatus.ENROLLED
