"""The database itself refuses the rows that must never exist, whatever the service does."""

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import IntegrityError

from app.courses.models import Course
from app.registrations.models import CourseRegistration


def _insert_registration(connection, student, course, status, position):
    connection.execute(
        insert(CourseRegistration).values(
            student_id=student.id, course_id=course.id, status=status, reserve_position=position
        )
    )


@pytest.mark.parametrize(
    "values",
    [
        {"enrolled_count": 3},  # capacity is 2
        {"enrolled_count": -1},
        {"reserved_count": 2},  # reserve limit is 1
        {"max_capacity": -1},
        {"reserve_limit": -1},
    ],
)
def test_course_counters_stay_within_capacity_and_limit(raw_engine, factory, values):
    course = factory.course(capacity=2, reserve_limit=1)
    with pytest.raises(IntegrityError, match="ck_courses_"), raw_engine.begin() as connection:
        connection.execute(update(Course).where(Course.id == course.id).values(**values))


@pytest.mark.parametrize(
    "status, position",
    [("ENROLLED", 1), ("RESERVED", None), ("RESERVED", 0), ("RESERVED", -2)],
)
def test_reserve_position_is_set_if_and_only_if_reserved(raw_engine, factory, status, position):
    course, student = factory.course(), factory.student()
    with pytest.raises(IntegrityError, match="ck_course_registrations_position_iff_reserved"):
        with raw_engine.begin() as connection:
            _insert_registration(connection, student, course, status, position)


def test_a_student_registers_for_a_course_at_most_once(raw_engine, factory):
    course, student = factory.course(), factory.student()
    with raw_engine.begin() as connection:
        _insert_registration(connection, student, course, "ENROLLED", None)
    with pytest.raises(IntegrityError, match="uq_course_registrations_student_id_course_id"):
        with raw_engine.begin() as connection:
            _insert_registration(connection, student, course, "RESERVED", 1)


def test_reserve_positions_are_unique_per_course(raw_engine, factory):
    course, other_course = factory.course(), factory.course()
    first, second = factory.students(2)
    with raw_engine.begin() as connection:
        _insert_registration(connection, first, course, "RESERVED", 1)
        _insert_registration(connection, second, other_course, "RESERVED", 1)  # another course: fine
    with pytest.raises(IntegrityError, match="uq_course_registrations_course_id_reserve_position"):
        with raw_engine.begin() as connection:
            _insert_registration(connection, second, course, "RESERVED", 1)


def test_many_enrolled_rows_share_the_null_position(raw_engine, factory):
    course = factory.course()
    with raw_engine.begin() as connection:
        for student in factory.students(3):
            _insert_registration(connection, student, course, "ENROLLED", None)


def test_one_statement_can_shift_a_whole_reserve_list(raw_engine, factory):
    course = factory.course()
    students = factory.students(3)
    with raw_engine.begin() as connection:
        for position, student in enumerate(students, start=1):
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
            text("SELECT reserve_position FROM course_registrations WHERE course_id = :c ORDER BY 1"),
            {"c": course.id},
        ).all()
    assert positions == [1, 2]


def test_semester_window_must_be_ordered(raw_engine):
    with pytest.raises(IntegrityError, match="ck_semesters_registration_window_order"):
        with raw_engine.begin() as connection:
            connection.execute(
                text("INSERT INTO semesters (name, registration_start, registration_end) VALUES ('bad', now(), now())")
            )
