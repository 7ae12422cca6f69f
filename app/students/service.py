"""A registrar's changes to students, and registering or dropping on a student's behalf.

Every change to what the registration rules read about a student (their limit,
holds, transcript, appointments) takes the student's lock first
(`registrations.statements.LOCK_STUDENT`'s `FOR NO KEY UPDATE`, looked up here by
student number), in one short transaction, so a registration in flight sees the
change entirely before or entirely after, never half of it. A hold placed or lifted
is recorded in the audit trail by the statement that makes the change.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, RowMapping, Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from app.core.pagination import Page, PagedQuery, PageParams
from app.core.security import hash_password
from app.registrations import service as registrations
from app.registrations.models import RegistrationEvent
from app.semesters.service import ensure_semester_exists
from app.students.errors import HoldNotFound, StudentNotFound, StudentNumberTaken
from app.students.models import Student

_UUID: Uuid[Any] = Uuid()

_FIND = text("SELECT id FROM students WHERE student_number = :number")
# The student's lock (docs/architecture.md: the student first, then courses by ascending id).
_LOCK = text("SELECT id FROM students WHERE student_number = :number FOR NO KEY UPDATE")

# Shaped like AdminStudentRead: the student with their transcript and active holds.
_VIEW = text(
    """
    SELECT s.id, s.student_number, s.name, s.max_credits,
           ARRAY(SELECT cc.course_code FROM student_completed_courses cc
                 WHERE cc.student_id = s.id ORDER BY cc.course_code) AS completed_courses,
           COALESCE((SELECT json_agg(json_build_object('id', h.id, 'reason', h.reason, 'placed_at', h.placed_at,
                                                       'placed_by', h.placed_by, 'lifted_at', h.lifted_at,
                                                       'lifted_by', h.lifted_by) ORDER BY h.id)
                     FROM student_holds h WHERE h.student_id = s.id AND h.lifted_at IS NULL), '[]') AS holds
    FROM students s WHERE s.id = :student
    """
).bindparams(bindparam("student", type_=_UUID))

_CREATE = text(
    """
    INSERT INTO students (student_number, name, password_hash, max_credits)
    VALUES (:number, :name, :password_hash, :max_credits)
    ON CONFLICT (student_number) DO NOTHING
    RETURNING id
    """
)

_HOLD_COLUMNS = "id, reason, placed_at, placed_by, lifted_at, lifted_by"

# The hold and its event, in one statement.
_PLACE_HOLD = text(
    f"""
    WITH hold AS (
        INSERT INTO student_holds (student_id, reason, placed_by) VALUES (:student, :reason, :actor)
        RETURNING {_HOLD_COLUMNS}
    ), event AS (
        INSERT INTO registration_events (event_type, student_id, actor, request_id, details)
        SELECT CAST('HOLD_PLACED' AS registration_event_type), CAST(:student AS uuid), CAST(:actor AS text),
               CAST(:request_id AS text), jsonb_build_object('hold_id', id, 'reason', reason)
        FROM hold
    )
    SELECT {_HOLD_COLUMNS} FROM hold
    """
).bindparams(bindparam("student", type_=_UUID))

# Only an active hold of this student is lifted; the event only if one was.
_LIFT_HOLD = text(
    f"""
    WITH hold AS (
        UPDATE student_holds SET lifted_at = :now, lifted_by = :actor
        WHERE id = :hold AND student_id = :student AND lifted_at IS NULL
        RETURNING {_HOLD_COLUMNS}
    ), event AS (
        INSERT INTO registration_events (event_type, student_id, actor, request_id, details)
        SELECT CAST('HOLD_LIFTED' AS registration_event_type), CAST(:student AS uuid), CAST(:actor AS text),
               CAST(:request_id AS text), jsonb_build_object('hold_id', id, 'reason', reason)
        FROM hold
    )
    SELECT {_HOLD_COLUMNS} FROM hold
    """
).bindparams(bindparam("student", type_=_UUID), bindparam("now", type_=DateTime(timezone=True)))

_ADD_COMPLETED = text(
    """
    INSERT INTO student_completed_courses (student_id, course_code) VALUES (:student, :code)
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("student", type_=_UUID))

_SET_APPOINTMENT = text(
    """
    INSERT INTO student_terms (student_id, semester_id, registration_opens_at) VALUES (:student, :semester, :opens_at)
    ON CONFLICT (student_id, semester_id) DO UPDATE SET registration_opens_at = EXCLUDED.registration_opens_at
    RETURNING semester_id, registration_opens_at
    """
).bindparams(bindparam("student", type_=_UUID), bindparam("opens_at", type_=DateTime(timezone=True)))


def find_student_id(connection: Connection | Session, *, student_number: str) -> uuid.UUID:
    student_id: uuid.UUID | None = connection.scalar(_FIND, {"number": student_number})
    if student_id is None:
        raise StudentNotFound()
    return student_id


def _lock_student(session: Session, student_number: str) -> uuid.UUID:
    student_id: uuid.UUID | None = session.scalar(_LOCK, {"number": student_number})
    if student_id is None:
        raise StudentNotFound()
    return student_id


def _view(session: Session, student_id: uuid.UUID) -> RowMapping:
    return session.execute(_VIEW, {"student": student_id}).mappings().one()


def create_student(
    session: Session, *, student_number: str, name: str, password: str, max_credits: int | None, bcrypt_rounds: int
) -> RowMapping:
    """A new student (AdminStudentRead); StudentNumberTaken when the number exists (the
    insert decides). The password is hashed before the transaction: no lock waits on bcrypt."""
    password_hash = hash_password(password, rounds=bcrypt_rounds)
    with session.begin():
        student_id = session.scalar(
            _CREATE,
            {"number": student_number, "name": name, "password_hash": password_hash, "max_credits": max_credits},
        )
        if student_id is None:
            raise StudentNumberTaken()
        return _view(session, student_id)


def update_student(session: Session, *, student_number: str, changes: Mapping[str, Any]) -> RowMapping:
    """The name and/or the student's own credit limit, under the student's lock. A limit
    below what the student holds removes nobody: their next registration is refused."""
    assignments = {"name": "name = :name", "max_credits": "max_credits = :max_credits"}
    sets = [assignments[field] for field in changes]
    with session.begin():
        student_id = _lock_student(session, student_number)
        if sets:
            session.execute(
                text(f"UPDATE students SET {', '.join(sets)}, updated_at = now() WHERE id = :student").bindparams(
                    bindparam("student", type_=_UUID)
                ),
                {**changes, "student": student_id},
            )
        return _view(session, student_id)


def place_hold(
    session: Session, *, student_number: str, reason: str, context: registrations.WriteContext
) -> RowMapping:
    """A hold (AdminHoldRead) and its HOLD_PLACED event, under the student's lock: a
    registration that took the lock first finishes without it, any later one is refused."""
    with session.begin():
        student_id = _lock_student(session, student_number)
        hold: RowMapping = (
            session.execute(
                _PLACE_HOLD,
                {"student": student_id, "reason": reason, "actor": context.actor, "request_id": context.request_id},
            )
            .mappings()
            .one()
        )
    return hold


def lift_hold(
    session: Session, *, student_number: str, hold_id: int, context: registrations.WriteContext
) -> RowMapping:
    """Lift an active hold (it stays on record, with who lifted it and when) and record
    HOLD_LIFTED, under the student's lock. HoldNotFound if this student has no such active hold."""
    with session.begin():
        student_id = _lock_student(session, student_number)
        hold = (
            session.execute(
                _LIFT_HOLD,
                {
                    "student": student_id,
                    "hold": hold_id,
                    "now": context.now,
                    "actor": context.actor,
                    "request_id": context.request_id,
                },
            )
            .mappings()
            .one_or_none()
        )
        if hold is None:
            raise HoldNotFound()
    return hold


def add_completed_course(session: Session, *, student_number: str, course_code: str) -> RowMapping:
    """Add a code to the student's transcript (idempotent), under the student's lock."""
    with session.begin():
        student_id = _lock_student(session, student_number)
        session.execute(_ADD_COMPLETED, {"student": student_id, "code": course_code})
        return _view(session, student_id)


def set_appointment(
    session: Session, *, student_number: str, semester_id: int, registration_opens_at: datetime | None
) -> dict[str, Any]:
    """When the student may start registering in the semester (null: with the semester),
    under the student's lock. Their credit counter in the semester is left as it is."""
    with session.begin():
        student_id = _lock_student(session, student_number)
        ensure_semester_exists(session.connection(), semester_id=semester_id)
        row = (
            session.execute(
                _SET_APPOINTMENT,
                {"student": student_id, "semester": semester_id, "opens_at": registration_opens_at},
            )
            .mappings()
            .one()
        )
    return {"student_number": student_number, **row}


# ---- on a student's behalf -----------------------------------------------------------------------


def _student_id(session: Session, student_number: str) -> uuid.UUID:
    with session.begin():
        return find_student_id(session, student_number=student_number)


def register_for_student(
    session: Session, *, student_number: str, course_id: int, context: registrations.WriteContext
) -> registrations.RegistrationResult:
    """Exactly a student's register (every rule, the same locks), recorded with the
    registrar in `context` as the actor."""
    student_id = _student_id(session, student_number)
    return registrations.register(session, student_id=student_id, course_id=course_id, now=context.now, context=context)


def drop_for_student(
    session: Session, *, student_number: str, course_id: int, context: registrations.WriteContext
) -> registrations.DropResult:
    """Exactly a student's drop (the window, the promotion), recorded with the registrar as the actor."""
    student_id = _student_id(session, student_number)
    return registrations.drop(session, student_id=student_id, course_id=course_id, now=context.now, context=context)


# ---- the student's trail -----------------------------------------------------------------------------

_STUDENT_EVENTS = PagedQuery(
    select(*registrations.ADMIN_EVENT_COLUMNS)
    .where(
        RegistrationEvent.student_id
        == select(Student.id).where(Student.student_number == bindparam("number")).scalar_subquery()
    )
    .order_by(RegistrationEvent.id.desc())
)


def list_student_events(engine: Engine, *, student_number: str, page: PageParams) -> Page[RowMapping]:
    """Everything that happened to the student's registrations and holds, every semester,
    newest first, on the read engine."""
    with engine.connect() as connection:
        result = _STUDENT_EVENTS.fetch(connection, page, number=student_number)
        if result.total == 0:
            find_student_id(connection, student_number=student_number)
    return result
