"""The registration transaction's hottest statements are prepared once per write
connection (DB_PREPARED_STATEMENTS), and the same answers come either way."""

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.db import create_db_engine
from app.registrations import service


def test_a_write_connection_has_the_hot_statements_prepared(app):
    with app.state.engine.connect() as connection:
        names = set(connection.scalars(text("SELECT name FROM pg_prepared_statements")))
    assert {"registration_standing", "registration_register"} <= names


def test_registering_answers_the_same_with_and_without_prepared_statements(app, settings, factory):
    plain = create_db_engine(settings)  # no connect event: the statements go as text
    try:
        course = factory.course(capacity=1, reserve_limit=1)
        first, second = factory.students(2)
        now = datetime.now(UTC)
        with Session(app.state.engine) as session:
            enrolled = service.register(session, student_id=first.id, course_id=course.id, now=now)
        with Session(plain) as session:
            reserved = service.register(session, student_id=second.id, course_id=course.id, now=now)
        assert (enrolled.status, reserved.status, reserved.reserve_position) == ("ENROLLED", "RESERVED", 1)
    finally:
        plain.dispose()
