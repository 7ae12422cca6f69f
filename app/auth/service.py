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
    """Return the student whose credentials these are, or raise InvalidCredentials
    (or TooManyLoginAttempts, before any password is checked).

    Three short transactions, and none is open while bcrypt runs: the
    connection goes back to the pool, so a login storm holds no database
    connection (and no throttle row lock) while it burns CPU.
    """
    scopes = throttle.login_scopes(student_number=student_number, client_address=client_address, settings=settings)
    # Counted as a failure up front, so that guesses in parallel cannot all pass
    # a check made before any of them is recorded (app/auth/throttle.py).
    with session.begin():
        reservations = throttle.reserve_attempt(
            session, scopes, now=now, window=timedelta(seconds=settings.login_failure_window_seconds)
        )
    with session.begin():
        student = session.scalar(select(Student).where(Student.student_number == student_number))

    # Hash anyway for an unknown student number: both failures cost the same time.
    password_hash = student.password_hash if student else dummy_password_hash(settings.bcrypt_rounds)
    if student is None or not verify_password(password, password_hash):
        raise InvalidCredentials()  # the reservations stand as the failure

    student_reservation, client_reservation = reservations  # in the order of login_scopes
    with session.begin():
        throttle.clear(session, student_reservation.scope)  # the student's failures start again from nothing
        throttle.give_back(session, client_reservation)  # a success is no failure of the client's
    return student


def get_student(session: Session, *, student_id: uuid.UUID) -> Student:
    student = session.get(Student, student_id)
    if student is None:
        # A valid signature for a student who no longer exists.
        raise InvalidToken()
    return student
