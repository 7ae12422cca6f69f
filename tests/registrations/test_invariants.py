"""The audit (app/registrations/invariants.py): a database the service wrote passes it,
and each kind of broken row written around the service is caught.

The database is one of this module's own, filled once through the service
(registering, a reserve list, drops that promote, a swap). Each test breaks it
inside a transaction that is rolled back, so every test starts from the same
clean state.

The snapshot tests at the end commit registrations while the audit runs, so they
use the session's test database and rows of their own (the `factory`) instead.
"""

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session

from app.registrations import service
from app.registrations.invariants import TrailEvent, audit, check_invariants, replay_course
from scripts import migrate

MON_9 = [{"day": "MON", "start": "09:00", "end": "10:30"}]
MON_1030 = [{"day": "MON", "start": "10:30", "end": "12:00"}]  # touches MON_9: no overlap
TUE_9 = [{"day": "TUE", "start": "09:00", "end": "10:00"}]


class World:
    """What the module's database holds: course ids by letter, student ids by name."""

    def __init__(self, connection: Connection) -> None:
        self.courses: dict[str, int] = {}
        self.students: dict[str, uuid.UUID] = {}
        now = datetime.now(UTC)
        self.semester = connection.execute(
            text(
                "INSERT INTO semesters (name, registration_start, registration_end) "
                "VALUES ('Audit', :start, :end) RETURNING id"
            ),
            {"start": now - timedelta(days=1), "end": now + timedelta(days=1)},
        ).scalar_one()
        for letter, capacity, reserve, credits, meetings in [
            ("A", 1, 3, 4, MON_9),
            ("B", 5, 0, 3, TUE_9),
            ("C", 5, 0, 3, MON_1030),
            ("E", 1, 3, 2, []),
        ]:
            self.courses[letter] = connection.execute(
                text(
                    "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                    "reserve_limit, credits, meetings) VALUES (:semester, :code, :code, 'Prof. Audit', '', "
                    ":capacity, :reserve, :credits, CAST(:meetings AS jsonb)) RETURNING id"
                ),
                {
                    "semester": self.semester,
                    "code": f"AUD{letter}",
                    "capacity": capacity,
                    "reserve": reserve,
                    "credits": credits,
                    "meetings": json.dumps(meetings),
                },
            ).scalar_one()
        for name in ("s1", "s2", "s3", "s4", "s5"):
            self.students[name] = connection.execute(
                text("INSERT INTO students (student_number, password_hash, name) VALUES (:n, 'x', :n) RETURNING id"),
                {"n": f"AUD-{name}"},
            ).scalar_one()


@pytest.fixture(scope="module")
def audit_engine(create_database) -> Iterator[Engine]:
    url = create_database(f"course_reg_audit_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def world(audit_engine) -> World:
    """Filled through the service, as the API would: every row has its events."""
    with audit_engine.begin() as connection:
        world = World(connection)
    now = datetime.now(UTC)
    course, student = world.courses, world.students

    def do(action, name, letter, **extra):
        with Session(audit_engine) as session:
            action(session, student_id=student[name], course_id=course[letter], now=now, **extra)

    for name in ("s1", "s2", "s3", "s4"):
        do(service.register, name, "A")  # s1 enrolled, s2..s4 reserved 1..3
    do(service.drop, "s1", "A")  # s2 promoted; s3, s4 move up
    do(service.drop, "s3", "A")  # a reserved drop: s4 moves up to 1
    do(service.swap, "s2", "B", drop_course_id=course["A"])  # s2: A -> B, s4 promoted in A
    do(service.register, "s1", "C")
    do(service.register, "s1", "B")
    for name in ("s1", "s3", "s4"):
        do(service.register, name, "E")  # s1 enrolled, s3 and s4 reserved 1 and 2
    return world


@pytest.fixture
def broken(audit_engine, world) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back: break anything."""
    with audit_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def problems(connection: Connection) -> list[str]:
    return [str(violation) for violation in check_invariants(connection).violations]


def one_problem(connection: Connection) -> str:
    [problem] = problems(connection)
    return problem


# ---- a clean database ----------------------------------------------------------------------


def test_a_database_written_by_the_service_passes_every_check(audit_engine, world):
    with audit_engine.connect() as connection:
        report = check_invariants(connection)
        events = connection.scalar(text("SELECT count(*) FROM registration_events"))
    assert report.ok, [str(v) for v in report.violations]
    assert report.courses_checked == 4
    assert report.registrations_checked == 7  # A: s4; B: s1, s2; C: s1; E: s1, s3, s4
    assert report.events_replayed == events > report.registrations_checked


def test_rows_the_migration_gave_one_event_each_pass(broken, world):
    """Pre-trail registrations got one {"migrated": true} event without the limit's details."""
    course = world.courses["C"]
    broken.execute(
        text(
            "INSERT INTO course_registrations (student_id, course_id, status, credits) "
            "VALUES (:student, :course, 'ENROLLED', 3)"
        ),
        {"student": world.students["s5"], "course": course},
    )
    broken.execute(text("UPDATE courses SET enrolled_count = enrolled_count + 1 WHERE id = :c"), {"c": course})
    broken.execute(
        text("INSERT INTO student_terms (student_id, semester_id, credits) VALUES (:s, :sem, 3)"),
        {"s": world.students["s5"], "sem": world.semester},
    )
    broken.execute(
        text(
            "INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, details) "
            "VALUES ('ENROLLED', :sem, :c, :s, 'system', '{\"migrated\": true}')"
        ),
        {"s": world.students["s5"], "sem": world.semester, "c": course},
    )
    assert problems(broken) == []


# ---- the credit counter --------------------------------------------------------------------


def test_a_credit_counter_that_disagrees_with_the_rows_is_caught(broken, world):
    broken.execute(
        text("UPDATE student_terms SET credits = credits + 1 WHERE student_id = :s"), {"s": world.students["s1"]}
    )
    problem = one_problem(broken)
    assert "student AUD-s1" in problem
    assert f"semester {world.semester}" in problem
    assert "counter 9 but the registrations hold 8 credits" in problem


def test_a_missing_credit_counter_is_caught(broken, world):
    broken.execute(text("DELETE FROM student_terms WHERE student_id = :s"), {"s": world.students["s2"]})
    assert "no counter row but the registrations hold 3 credits" in one_problem(broken)


# ---- time conflicts ----------------------------------------------------------------------


def test_two_overlapping_meetings_of_one_student_are_caught(broken, world):
    # s1 holds B (TUE 09:00-10:00) and C (MON 10:30-12:00): move B onto C's time.
    broken.execute(
        text("""UPDATE courses SET meetings = '[{"day": "MON", "start": "11:00", "end": "11:30"}]' WHERE id = :b"""),
        {"b": world.courses["B"]},
    )
    problem = one_problem(broken)
    assert "student AUD-s1" in problem
    low, high = sorted((world.courses["B"], world.courses["C"]))
    assert f"courses {low} and {high} meet at the same time" in problem


def test_meetings_that_only_touch_are_no_conflict(broken, world):
    # s1 holds C (MON 10:30-12:00); B moved to end exactly when C starts.
    broken.execute(
        text("""UPDATE courses SET meetings = '[{"day": "MON", "start": "09:00", "end": "10:30"}]' WHERE id = :b"""),
        {"b": world.courses["B"]},
    )
    assert problems(broken) == []


# ---- the limit in force when registering ------------------------------------------------------


def test_a_registration_over_the_limit_in_force_then_is_caught(broken, world):
    event_id = broken.execute(
        text("SELECT id FROM registration_events WHERE event_type = 'ENROLLED' AND course_id = :c AND student_id = :s"),
        {"c": world.courses["C"], "s": world.students["s1"]},
    ).scalar_one()
    broken.execute(
        text("""UPDATE registration_events SET details = details || '{"credits_after": 20, "max_credits": 18}'
                WHERE id = :id"""),
        {"id": event_id},
    )
    problem = one_problem(broken)
    assert f"course {world.courses['C']}, student AUD-s1" in problem
    assert f"event {event_id} registered with credits_after 20 over max_credits 18" in problem


def test_a_registering_event_that_does_not_record_the_limit_is_caught(broken, world):
    broken.execute(
        text("UPDATE registration_events SET details = '{}' WHERE event_type = 'RESERVED' AND course_id = :c"),
        {"c": world.courses["E"]},
    )
    found = problems(broken)
    assert len(found) == 2  # s3 and s4
    assert all("credits_after None over max_credits None" in problem for problem in found)


# ---- the replay of the trail ------------------------------------------------------------------


def test_a_registration_without_its_event_is_caught(broken, world):
    """A change that was acknowledged but never recorded."""
    broken.execute(
        text("DELETE FROM registration_events WHERE event_type = 'ENROLLED' AND course_id = :c AND student_id = :s"),
        {"c": world.courses["B"], "s": world.students["s1"]},
    )
    assert one_problem(broken) == (f"course {world.courses['B']}: enrolled without an event that explains it: AUD-s1")


def test_an_event_without_its_change_is_caught(broken, world):
    """A change recorded that never happened (or was rolled back without its event)."""
    broken.execute(
        text(
            "INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, details) "
            """VALUES ('ENROLLED', :sem, :c, :s, 'system', '{"credits_after": 3, "max_credits": 18}')"""
        ),
        {"sem": world.semester, "c": world.courses["B"], "s": world.students["s5"]},
    )
    assert one_problem(broken) == f"course {world.courses['B']}: the trail has enrolled, but no enrolled row: AUD-s5"


def test_a_lost_promotion_event_is_caught(broken, world):
    """Without the PROMOTED event, s4's later promotion in A is out of line and its seat unexplained."""
    broken.execute(
        text("DELETE FROM registration_events WHERE event_type = 'PROMOTED' AND course_id = :c AND student_id = :s"),
        {"c": world.courses["A"], "s": world.students["s4"]},
    )
    found = problems(broken)
    assert any("enrolled without an event that explains it: AUD-s4" in p for p in found), found
    assert any("reserve list [] but the trail gives ['AUD-s4']" in p for p in found), found


def test_a_reserve_list_in_another_order_than_the_trail_is_caught(broken, world):
    broken.execute(
        text(
            "UPDATE course_registrations SET reserve_position = 3 - reserve_position "
            "WHERE course_id = :c AND status = 'RESERVED'"
        ),
        {"c": world.courses["E"]},
    )
    assert one_problem(broken) == (
        f"course {world.courses['E']}: reserve list ['AUD-s4', 'AUD-s3'] but the trail gives ['AUD-s3', 'AUD-s4']"
    )


def test_events_that_contradict_the_state_so_far_are_reported(broken, world):
    """A drop recorded at the wrong position, and a second enrollment of the same student."""
    broken.execute(
        text(
            "UPDATE registration_events SET reserve_position = 2 "
            "WHERE event_type = 'DROPPED' AND course_id = :c AND student_id = :s"
        ),
        {"c": world.courses["A"], "s": world.students["s3"]},
    )
    found = problems(broken)
    assert len(found) == 1
    assert "DROPPED AUD-s3): recorded position 2, the replay gives 1" in found[0]


def test_the_script_reports_student_violations_by_subject(audit_engine, world, tmp_path):
    """scripts/check_invariants.run_check names a student's violation by student and semester."""
    from scripts.check_invariants import run_check

    url = audit_engine.url.render_as_string(hide_password=False)
    with audit_engine.begin() as connection:
        connection.execute(
            text("UPDATE student_terms SET credits = credits + 1 WHERE student_id = :s"), {"s": world.students["s3"]}
        )
    try:
        result = run_check(url)
    finally:
        with audit_engine.begin() as connection:
            connection.execute(
                text("UPDATE student_terms SET credits = credits - 1 WHERE student_id = :s"),
                {"s": world.students["s3"]},
            )
    assert result["status"] == "violated"
    [violation] = result["violations"]
    assert violation["student"] == "AUD-s3"
    assert violation["course_id"] is None
    assert violation["subject"] == f"student AUD-s3, semester {world.semester}"
    assert result["events_replayed"] > 0


# ---- one snapshot, while registrations commit -------------------------------------------------


@dataclass
class Rush:
    """An engine to audit through, and what committed on other connections meanwhile."""

    engine: Engine
    course_id: int
    registered: list[str] = field(default_factory=list)  # student numbers, in commit order
    transaction: tuple[str, str] | None = None  # the audit's isolation level and read-only flag


@pytest.fixture
def rush(database_url, engine, factory) -> Iterator[Rush]:
    """After every statement sent through `rush.engine`, one more student registers for
    `rush.course_id` through the service, on a connection of `engine`, and commits:
    registrations landing between the audit's statements, at known points every run."""
    course = factory.course(capacity=50, reserve_limit=0)
    waiting = iter(factory.students(30))
    audited = create_engine(database_url)
    with audited.connect():
        pass  # the dialect's first-connect queries, before the listener
    rush = Rush(audited, course.id)

    def register_one(connection, cursor, statement, parameters, context, executemany):
        if rush.transaction is None:
            with cursor.connection.cursor() as raw:  # the DBAPI's own cursor: no event, no recursion
                raw.execute("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
                rush.transaction = raw.fetchone()
        student = next(waiting)
        with Session(engine) as session:
            service.register(session, student_id=student.id, course_id=course.id, now=datetime.now(UTC))
        rush.registered.append(student.student_number)

    event.listen(audited, "after_cursor_execute", register_one)
    yield rush
    event.remove(audited, "after_cursor_execute", register_one)
    audited.dispose()


def registration_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM course_registrations"))


def test_the_audit_reads_one_snapshot_while_registrations_commit_between_its_statements(rush, engine):
    before = registration_count(engine)
    report = audit(rush.engine)
    assert len(rush.registered) >= 5  # one after each statement: tallies, counters, meetings, events...
    assert report.ok, [str(violation) for violation in report.violations]
    assert report.registrations_checked == before  # the snapshot of its first statement, throughout
    assert rush.transaction == ("repeatable read", "on")
    assert registration_count(engine) == before + len(rush.registered)


def test_read_committed_reports_a_registration_committed_mid_audit_as_a_violation(rush):
    """Why the audit needs its snapshot: each statement on its own (PostgreSQL's default)
    reads the registrations, then a trail that already has the next one's event."""
    with rush.engine.connect() as connection:
        report = check_invariants(connection)
    assert rush.transaction == ("read committed", "off")
    [ghost] = [str(violation) for violation in report.violations]
    prefix = f"course {rush.course_id}: the trail has enrolled, but no enrolled row: "
    assert ghost.startswith(prefix) and ghost.removeprefix(prefix) in rush.registered, ghost


# ---- the replay alone ---------------------------------------------------------------------------


def _ids(count: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=n + 1) for n in range(count)]


def test_replay_moves_the_promoted_student_from_the_queue_to_the_seats():
    a, b, c = _ids(3)
    state = replay_course(
        [
            TrailEvent(1, "ENROLLED", a, None),
            TrailEvent(2, "RESERVED", b, 1),
            TrailEvent(3, "RESERVED", c, 2),
            TrailEvent(4, "DROPPED", a, None),
            TrailEvent(5, "PROMOTED", b, 1),
        ]
    )
    assert (state.enrolled, state.reserved, state.anomalies) == ({b}, [c], [])


def test_replay_removes_a_cancelled_or_swapped_student_wherever_they_are():
    a, b, c = _ids(3)
    state = replay_course(
        [
            TrailEvent(1, "ENROLLED", a, None),
            TrailEvent(2, "RESERVED", b, 1),
            TrailEvent(3, "RESERVED", c, 2),
            TrailEvent(4, "SWAPPED", b, 1),
            TrailEvent(5, "CANCELLED", a, None),
            TrailEvent(6, "CANCELLED", c, None),
        ]
    )
    assert (state.enrolled, state.reserved, state.anomalies) == (set(), [], [])


def test_replay_flags_events_that_do_not_fit():
    a, b = _ids(2)
    state = replay_course(
        [
            TrailEvent(1, "RESERVED", a, 2),  # the queue was empty: position 1
            TrailEvent(2, "PROMOTED", b, 1),  # never queued
            TrailEvent(3, "DROPPED", b, 1),  # enrolled now, so no position
            TrailEvent(4, "DROPPED", b, None),  # gone already
        ],
        name=lambda student_id: "b" if student_id == b else "a",
    )
    assert state.anomalies == [
        "event 1 (RESERVED a): recorded position 2, the replay gives 1",
        "event 2 (PROMOTED b): the student is not on the reserve list",
        "event 3 (DROPPED b): recorded position 1, the replay gives None",
        "event 4 (DROPPED b): the student is not registered",
    ]
