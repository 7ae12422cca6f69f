"""The registration window at its boundary instants, through the service with an explicit clock."""

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.registrations import service
from app.registrations.errors import AlreadyRegistered, RegistrationClosed
from app.registrations.models import RegistrationStatus
from app.semesters.models import Semester

ONE_MICROSECOND = timedelta(microseconds=1)


def test_register_is_open_at_the_first_instant_of_the_window(session, factory):
    course = factory.course()
    semester_start = _semester(session, course).registration_start
    result = service.register(session, student_id=factory.student().id, course_id=course.id, now=semester_start)
    assert result.status == RegistrationStatus.ENROLLED


def test_register_is_closed_just_before_the_window(session, factory):
    course = factory.course()
    start = _semester(session, course).registration_start
    with pytest.raises(RegistrationClosed):
        service.register(session, student_id=factory.student().id, course_id=course.id, now=start - ONE_MICROSECOND)


def test_register_is_open_at_the_last_microsecond_and_closed_at_the_end_instant(session, factory):
    course = factory.course()
    end = _semester(session, course).registration_end
    early, late = factory.students(2)
    service.register(session, student_id=early.id, course_id=course.id, now=end - ONE_MICROSECOND)
    with pytest.raises(RegistrationClosed):
        service.register(session, student_id=late.id, course_id=course.id, now=end)


def test_drop_is_open_at_the_first_instant_of_the_window(session, factory):
    course = factory.course()
    start = _semester(session, course).registration_start
    student = factory.student()
    service.register(session, student_id=student.id, course_id=course.id, now=start)
    result = service.drop(session, student_id=student.id, course_id=course.id, now=start)
    assert result.dropped_status == RegistrationStatus.ENROLLED


def test_drop_is_closed_just_before_the_window(session, factory):
    course = factory.course()
    start = _semester(session, course).registration_start
    student = factory.student()
    service.register(session, student_id=student.id, course_id=course.id, now=start)
    with pytest.raises(RegistrationClosed):
        service.drop(session, student_id=student.id, course_id=course.id, now=start - ONE_MICROSECOND)


def test_drop_is_open_at_the_last_microsecond_and_closed_at_the_end_instant(session, factory):
    course = factory.course()
    semester = _semester(session, course)
    end = semester.registration_end
    early, late = factory.students(2)
    for student in (early, late):
        service.register(session, student_id=student.id, course_id=course.id, now=semester.registration_start)
    result = service.drop(session, student_id=early.id, course_id=course.id, now=end - ONE_MICROSECOND)
    assert result.dropped_status == RegistrationStatus.ENROLLED
    with pytest.raises(RegistrationClosed):
        service.drop(session, student_id=late.id, course_id=course.id, now=end)
    # The refused drop left the registration in place.
    with pytest.raises(AlreadyRegistered):
        service.register(session, student_id=late.id, course_id=course.id, now=semester.registration_start)


def _semester(session, course):
    # A session of its own: the service must begin the test session's transaction itself.
    with Session(session.get_bind()) as reader:
        return reader.get(Semester, course.semester_id)
