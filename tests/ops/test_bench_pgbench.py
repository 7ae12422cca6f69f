"""The pgbench ceilings of `make bench` (bench/suite.py): the rules shape is the
service's own registration, statement for statement, and writes what it writes."""

import secrets
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.registrations import service, statements
from bench.suite import (
    PGBENCH,
    PGBENCH_STUDENT,
    check_rules_writes,
    pgbench_statement,
    rules_register_sql,
    seed_pgbench_students,
)
from scripts import migrate


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def test_rules_script_sends_the_service_statements_in_its_order() -> None:
    script = rules_register_sql(18)
    sent = [line for line in script.splitlines() if not line.startswith("\\set")]
    assert sent[0] == "BEGIN;" and sent[-1] == "COMMIT;"
    # Each statement's text, up to its first parameter, in the service's order.
    for line, statement in zip(
        sent[1:-1],
        (statements.LOCK_STUDENT, statements.STANDING, statements.LOCK_COURSE, statements.REGISTER),
        strict=True,
    ):
        assert line.startswith(_one_line(statements.sql_of(statement)).split(":")[0])
    assert "\\gset locked_" in script and "FOR UPDATE OF c" in script


def test_a_parameter_the_script_does_not_map_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="out of date"):
        pgbench_statement(statements.LOCK_COURSE, {})
    with pytest.raises(RuntimeError, match="out of date"):
        pgbench_statement(statements.LOCK_COURSE, {"course": "1", "gone": "2"})


@pytest.mark.slow  # pgbench in a subprocess
def test_rules_script_writes_what_the_service_writes(create_database) -> None:
    url = create_database(f"course_reg_pgbench_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        semester = connection.execute(
            text(
                "INSERT INTO semesters (name, registration_start, registration_end) VALUES ('t', :a, :b) RETURNING id"
            ),
            {"a": now - timedelta(days=1), "b": now + timedelta(days=1)},
        ).scalar_one()
        course = connection.execute(
            text(
                "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                "reserve_limit) VALUES (:s, 'PGB1', 'pgbench', 'Prof', 'Mon', 1000, 0) RETURNING id"
            ),
            {"s": semester},
        ).scalar_one()
        seed_pgbench_students(connection, "not-a-hash", 20)
        own = connection.execute(
            text("INSERT INTO students (student_number, password_hash, name) VALUES ('OWN1', 'x', 'own') RETURNING id")
        ).scalar_one()
    with Session(engine) as session:
        service.register(session, student_id=own, course_id=course, now=now)

    script = f"\\set course_id {course}\n" + rules_register_sql(18)
    libpq_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(
        [str(PGBENCH), "-n", "-M", "simple", "-c", "2", "-t", "5", "-D", "actor_prefix=student:", "-f", "-", libpq_url],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "number of failed transactions: 0" in done.stdout

    with engine.connect() as connection:
        check_rules_writes(connection, "test", 10)
        events = connection.execute(
            text(
                "SELECT student_id, event_type::text, semester_id, course_id, actor, reserve_position, details "
                "FROM registration_events ORDER BY id"
            )
        ).all()
        enrolled = connection.execute(text("SELECT enrolled_count FROM courses WHERE id = :c"), {"c": course}).scalar()
        first_ten = set(
            connection.execute(text("SELECT " + PGBENCH_STUDENT.format(n="g") + " FROM generate_series(1, 10) AS g"))
            .scalars()
            .all()
        )
    assert enrolled == 11
    # The service's event, then ten from pgbench with the same shape: one student each, from the sequence.
    service_event, *pgbench_events = events
    assert len(pgbench_events) == 10
    assert {event.student_id for event in pgbench_events} == first_ten
    for event in pgbench_events:
        assert event[1:4] == service_event[1:4]
        assert event.actor == f"student:{event.student_id}"
        assert event.reserve_position is None
        assert event.details == service_event.details  # {"credits": 3, "credits_after": 3, "max_credits": 18}
    engine.dispose()
