import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import throttle
from app.core.config import Settings
from app.core.errors import InvalidCredentials, InvalidToken
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
    """Return the student whose credentials these are, or raise InvalidCredentials.

    The connection goes back to the pool before bcrypt runs, so a login storm
    holds no database connection while it burns CPU.
    """
    scopes = throttle.login_scopes(student_number=student_number, client_address=client_address, settings=settings)
    with session.begin():
        throttle.ensure_not_blocked(session, scopes, now=now)
        student = session.scalar(select(Student).where(Student.student_number == student_number))

    # Hash anyway for an unknown student number: both failures cost the same time.
    password_hash = student.password_hash if student else dummy_password_hash(settings.bcrypt_rounds)
    password_matches = verify_password(password, password_hash)

    with session.begin():
        if student is None or not password_matches:
            window = timedelta(seconds=settings.login_failure_window_seconds)
            throttle.record_failure(session, scopes, now=now, window=window)
        else:
            throttle.clear(session, scopes[0])  # the student's own count; not the client's
    if student is None or not password_matches:
        raise InvalidCredentials()
    return student


def get_student(session: Session, *, student_id: uuid.UUID) -> Student:
    student = session.get(Student, student_id)
    if student is None:
        # A valid signature for a student who no longer exists.
        raise InvalidToken()
    return student
