import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from app.auth import throttle
from app.auth.errors import InvalidCredentials, InvalidToken
from app.core.config import Settings
from app.core.security import dummy_password_hash, verify_password
from app.students.models import CompletedCourse, Student, StudentHold


def login_delay(
    engine: Engine, *, student_number: str, client_address: str, settings: Settings, now: datetime
) -> float:
    """Before a login waits for its turn: one autocommit read of its throttle counts.

    Raise TooManyLoginAttempts at once when a refusing scope is already at its
    limit (no wait, no turn, no password check); otherwise return the seconds the
    attempt must wait first, from the student's failures in the window
    (app/auth/throttle.py). `authenticate` checks again, under the row locks, so a
    read that is a moment behind (a standby, attempts landing meanwhile) only
    decides how early a refusal comes and how long the wait is.
    """
    scopes = throttle.login_scopes(student_number=student_number, client_address=client_address, settings=settings)
    with engine.connect() as connection:
        counts = throttle.current_counts(connection, scopes.all, now=now)
    throttle.ensure_allowed(counts, scopes.refusing, now=now)
    return throttle.student_slowdown(counts, scopes, settings)


def authenticate(
    session: Session,
    *,
    student_number: str,
    password: str,
    client_address: str,
    settings: Settings,
    now: datetime,
) -> Student:
    """Return the student whose credentials these are, or raise InvalidCredentials
    (or TooManyLoginAttempts, before any password is checked).

    No transaction is open while bcrypt runs: the connection goes back to the
    pool, so a login storm holds no database connection (and no throttle row
    lock) while it burns CPU. What each scope counts: app/auth/throttle.py. Rows
    are locked in one order on every path: pair, student, student-logins,
    client-logins, client.
    """
    scopes = throttle.login_scopes(student_number=student_number, client_address=client_address, settings=settings)
    with session.begin():
        counts = throttle.current_counts(session, (scopes.client, scopes.student_logins, scopes.client_logins), now=now)
        throttle.ensure_allowed(counts, (scopes.client, scopes.student_logins, scopes.client_logins), now=now)
        # Counted as failures up front, so that guesses in parallel cannot all
        # pass a check made before any of them is recorded.
        throttle.reserve_attempt(session, scopes.pair, now=now)
        throttle.add_attempt(session, scopes.student, now=now)
        student = session.scalar(select(Student).where(Student.student_number == student_number))

    # Hash anyway for an unknown student number: both failures cost the same time.
    password_hash = student.password_hash if student else dummy_password_hash(settings.bcrypt_rounds)
    password_matches = verify_password(password, password_hash)
    if student is None or not password_matches:
        with session.begin():
            throttle.add_attempt(session, scopes.client, now=now)
        raise InvalidCredentials()  # the pair's and the student's reservations stand as the failure

    with session.begin():
        throttle.clear(session, scopes.pair)  # this address's failures for the student start again
        throttle.give_back_attempt(session, scopes.student, now=now)
        throttle.add_attempt(session, scopes.student_logins, now=now)
        throttle.add_attempt(session, scopes.client_logins, now=now)
    return student


_STUDENT_EXISTS = select(Student.id).where(Student.id == bindparam("student"))


def ensure_student_exists(engine: Engine, student_id: uuid.UUID) -> None:
    """One autocommit statement on the read engine; InvalidToken when the student is gone."""
    with engine.connect() as connection:
        if connection.scalar(_STUDENT_EXISTS, {"student": student_id}) is None:
            raise InvalidToken("The student in this token no longer exists")


def get_student(session: Session, *, student_id: uuid.UUID, default_max_credits: int) -> dict[str, Any]:
    """The student, with what the registration rules read about them: their limit,
    transcript and active holds."""
    with session.begin():
        student = session.get(Student, student_id)
        if student is None:
            # A valid signature for a student who no longer exists.
            raise InvalidToken()
        completed = session.scalars(
            select(CompletedCourse.course_code)
            .where(CompletedCourse.student_id == student_id)
            .order_by(CompletedCourse.course_code)
        ).all()
        holds = session.execute(
            select(StudentHold.id, StudentHold.reason, StudentHold.placed_at)
            .where(StudentHold.student_id == student_id, StudentHold.lifted_at.is_(None))
            .order_by(StudentHold.id)
        ).all()
    return {
        "id": student.id,
        "student_number": student.student_number,
        "name": student.name,
        "max_credits": student.max_credits if student.max_credits is not None else default_max_credits,
        "completed_courses": list(completed),
        "holds": [hold._asdict() for hold in holds],
    }
