"""The database itself refuses the rows that must never exist, whatever the service does.

Each test works inside a transaction that is rolled back, so the rows written
here by hand (bypassing the counters) never reach the other tests' invariant checks.
"""

from contextlib import contextmanager

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import IntegrityError

from app.courses.models import Course
from app.registrations.models import CourseRegistration


@pytest.fixture
def connection(raw_engine):
    with raw_engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@contextmanager
def refused(connection, constraint):
    """Expect the block to violate `constraint`; a savepoint keeps the test's transaction usable."""
    with pytest.raises(IntegrityError, match=constraint), connection.begin_nested():
        yield


def _insert_registration(connection, student, course, status, position):
    connection.execute(
        insert(CourseRegistration).values(
            student_id=student.id, course_id=course.id, status=status, reserve_position=position
        )
    )


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"enrolled_count": 3}, "ck_courses_enrolled_within_capacity"),  # capacity is 2
        ({"enrolled_count": -1}, "ck_courses_enrolled_within_capacity"),
        ({"reserved_count": 2}, "ck_courses_reserved_within_limit"),  # reserve limit is 1
        ({"max_capacity": -1}, "ck_courses_"),
        ({"reserve_limit": -1}, "ck_courses_"),
    ],
)
def test_course_counters_stay_within_capacity_and_limit(connection, factory, values, constraint):
    course = factory.course(capacity=2, reserve_limit=1)
    with refused(connection, constraint):
        connection.execute(update(Course).where(Course.id == course.id).values(**values))


@pytest.mark.parametrize(
    ("status", "position"),
    [("ENROLLED", 1), ("RESERVED", None), ("RESERVED", 0), ("RESERVED", -2)],
)
def test_reserve_position_is_set_if_and_only_if_reserved(connection, factory, status, position):
    course, student = factory.course(), factory.student()
    with refused(connection, "ck_course_registrations_position_iff_reserved"):
        _insert_registration(connection, student, course, status, position)


def test_a_student_registers_for_a_course_at_most_once(connection, factory):
    course, student = factory.course(), factory.student()
    _insert_registration(connection, student, course, "ENROLLED", None)
    with refused(connection, "uq_course_registrations_student_id_course_id"):
        _insert_registration(connection, student, course, "RESERVED", 1)


def test_reserve_positions_are_unique_per_course(connection, factory):
    course, other_course = factory.course(), factory.course()
    first, second = factory.students(2)
    _insert_registration(connection, first, course, "RESERVED", 1)
    _insert_registration(connection, second, other_course, "RESERVED", 1)  # another course: fine
    with refused(connection, "uq_course_registrations_course_id_reserve_position"):
        _insert_registration(connection, second, course, "RESERVED", 1)


def test_many_enrolled_rows_share_the_null_position(connection, factory):
    course = factory.course()
    for student in factory.students(3):
        _insert_registration(connection, student, course, "ENROLLED", None)


def test_one_statement_can_shift_a_whole_reserve_list(connection, factory):
    course = factory.course()
    for position, student in enumerate(factory.students(3), start=1):
        _insert_registration(connection, student, course, "RESERVED", position)
    connection.execute(
        text("DELETE FROM course_registrations WHERE course_id = :c AND reserve_position = 1"), {"c": course.id}
    )
    # Row by row, 2 -> 1 and 3 -> 2 collide mid-statement unless the check waits for its end.
    connection.execute(
        text("UPDATE course_registrations SET reserve_position = reserve_position - 1 WHERE course_id = :c"),
        {"c": course.id},
    )
    positions = connection.scalars(
        text("SELECT reserve_position FROM course_registrations WHERE course_id = :c ORDER BY 1"), {"c": course.id}
    ).all()
    assert positions == [1, 2]


def test_semester_window_must_be_ordered(connection):
    with refused(connection, "ck_semesters_registration_window_order"):
        connection.execute(
            text("INSERT INTO semesters (name, registration_start, registration_end) VALUES ('bad', now(), now())")
        )
