"""The registration statements that name their result columns (`_returning` in
app/registrations/statements.py) name them as PostgreSQL returns them, in order. A
row's keys still come from the cursor, but SQLAlchemy trusts the list for how many
columns there are and keeps the result map it built the first time: a list that
drifted from its SQL would mislead a reader and hide a column."""

import json

import pytest
from sqlalchemy import TextualSelect

from app.registrations import statements

RETURNING = sorted(name for name, value in vars(statements).items() if isinstance(value, TextualSelect))


def test_the_hot_statements_name_their_columns():
    assert {"LOCK_STUDENT", "STANDING", "STANDING_PREPARED", "LOCK_COURSE", "REGISTER", "VACATE"} <= set(RETURNING)


@pytest.mark.parametrize("name", RETURNING)
def test_a_statement_names_the_columns_postgresql_returns(name, app, factory):
    statement: TextualSelect = getattr(statements, name)
    course = factory.course(capacity=1, reserve_limit=1)
    student = factory.student()
    values = {
        "student": student.id,
        "course": course.id,
        "semester": course.semester_id,
        "default_max_credits": 18,
        "new_status": "ENROLLED",
        "new_position": None,
        "course_credits": 3,
        "new_enrolled_count": 1,
        "new_reserved_count": 0,
        "actor": "test",
        "request_id": None,
        "details": json.dumps({}),
        "vacated_position": 0,
        "freed_credits": 0,
        "event_type": "DROPPED",
        "dropped_position": None,
    }
    wanted = statement.compile().params.keys()
    # The write engine's connections have the prepared forms; rolled back, so nothing stays.
    with app.state.engine.connect() as connection, connection.begin() as transaction:
        result = connection.execute(statement, {key: values[key] for key in wanted})
        returned = [description[0] for description in result.cursor.description]
        transaction.rollback()
    assert returned == [selected.name for selected in statement.selected_columns]
