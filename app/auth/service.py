import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from app.auth import throttle
from app.auth.errors import InvalidCredentials, InvalidToken
from app.core.config import Settings
from app.core.security import dummy_password_hash, verify_password
from app.students.models import Student


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
    lock) while it burns CPU. How each scope counts: app/auth/throttle.py.
    """
    student_scope, client_scope = throttle.login_scopes(
        student_number=student_number, client_address=client_address, settings=settings
    )
    window = timedelta(seconds=settings.login_failure_window_seconds)
    with session.begin():
        throttle.ensure_allowed(session, client_scope, now=now, window=window)
        # Counted as a failure up front, so that guesses in parallel cannot all
        # pass a check made before any of them is recorded.
        throttle.reserve_attempt(session, student_scope, now=now, window=window)
        student = session.scalar(select(Student).where(Student.student_number == student_number))

    # Hash anyway for an unknown student number: both failures cost the same time.
    password_hash = student.password_hash if student else dummy_password_hash(settings.bcrypt_rounds)
    password_matches = verify_password(password, password_hash)
    if student is None or not password_matches:
        with session.begin():
            throttle.record_failure(session, client_scope, now=now, window=window)
        raise InvalidCredentials()  # the student's reservation stands as the failure

    with session.begin():
        throttle.clear(session, student_scope)  # the student's failures start again from nothing
    return student


_STUDENT_EXISTS = select(Student.id).where(Student.id == bindparam("student"))


def ensure_student_exists(engine: Engine, student_id: uuid.UUID) -> None:
    """One autocommit statement on the read engine; InvalidToken when the student is gone."""
    with engine.connect() as connection:
        if connection.scalar(_STUDENT_EXISTS, {"student": student_id}) is None:
            raise InvalidToken("The student in this token no longer exists")


def get_student(session: Session, *, student_id: uuid.UUID) -> Student:
    with session.begin():
        student = session.get(Student, student_id)
    if student is None:
        # A valid signature for a student who no longer exists.
        raise InvalidToken()
    return student
