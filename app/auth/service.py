import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import InvalidCredentials, InvalidToken
from app.core.security import dummy_password_hash, verify_password
from app.students.models import Student


def authenticate(session: Session, *, student_number: str, password: str, settings: Settings) -> Student:
    """Return the student whose credentials these are, or raise InvalidCredentials.

    The query runs and the connection goes back to the pool before bcrypt runs,
    so a login storm holds no database connection while it burns CPU.
    """
    with session.begin():
        student = session.scalar(select(Student).where(Student.student_number == student_number))
    # Hash anyway for an unknown student number: both failures cost the same time.
    password_hash = student.password_hash if student else dummy_password_hash(settings.bcrypt_rounds)
    if not verify_password(password, password_hash) or student is None:
        raise InvalidCredentials()
    return student


def get_student(session: Session, *, student_id: uuid.UUID) -> Student:
    student = session.get(Student, student_id)
    if student is None:
        # A valid signature for a student who no longer exists.
        raise InvalidToken()
    return student
