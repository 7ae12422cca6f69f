"""Semesters: reading them (single statements on the read engine, autocommit) and a
registrar's changes (one short transaction each; no registration ever locks a
semester row, so an edit waits for nothing but another edit of the same semester)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, RowMapping, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import UNIQUE_VIOLATION
from app.core.pagination import Page, PagedQuery, PageParams
from app.semesters.errors import RegistrationWindowInvalid, SemesterNameTaken, SemesterNotFound
from app.semesters.models import Semester

# The window is judged at the app's `now`, the same clock registering judges it
# by (app/registrations/rules.py: start inclusive, end exclusive).
_NOW = bindparam("now", type_=DateTime(timezone=True))
_IS_REGISTRATION_OPEN = (Semester.registration_start <= _NOW) & (Semester.registration_end > _NOW)

# Exactly the fields of SemesterRead.
_READ_COLUMNS = (
    Semester.id,
    Semester.name,
    Semester.registration_start,
    Semester.registration_end,
    _IS_REGISTRATION_OPEN.label("is_registration_open"),
)
_SEMESTER_FIELDS = select(*_READ_COLUMNS)
_SEMESTERS = PagedQuery(_SEMESTER_FIELDS.order_by(Semester.registration_start, Semester.id))
_SEMESTER = _SEMESTER_FIELDS.where(Semester.id == bindparam("semester"))
_SEMESTER_EXISTS = select(Semester.id).where(Semester.id == bindparam("semester"))


def list_semesters(engine: Engine, *, page: PageParams, now: datetime) -> Page[RowMapping]:
    with engine.connect() as connection:
        return _SEMESTERS.fetch(connection, page, now=now)


def get_semester(engine: Engine, *, semester_id: int, now: datetime) -> RowMapping:
    with engine.connect() as connection:
        semester = connection.execute(_SEMESTER, {"semester": semester_id, "now": now}).mappings().one_or_none()
    if semester is None:
        raise SemesterNotFound()
    return semester


def ensure_semester_exists(connection: Connection, *, semester_id: int) -> None:
    if connection.scalar(_SEMESTER_EXISTS, {"semester": semester_id}) is None:
        raise SemesterNotFound()


# ---- a registrar's changes ------------------------------------------------------------------------


def create_semester(
    session: Session, *, name: str, registration_start: datetime, registration_end: datetime, now: datetime
) -> RowMapping:
    """A new semester (SemesterRead); SemesterNameTaken when the name exists (the insert
    itself decides, so two registrars creating the same name cannot both succeed)."""
    with session.begin():
        row = (
            session.execute(
                insert(Semester)
                .values(name=name, registration_start=registration_start, registration_end=registration_end)
                .on_conflict_do_nothing(index_elements=[Semester.name])
                .returning(*_READ_COLUMNS),
                {"now": now},
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise SemesterNameTaken()
    return row


def update_semester(session: Session, *, semester_id: int, changes: dict[str, Any], now: datetime) -> RowMapping:
    """Change the name and/or the window (only the keys in `changes`), in one UPDATE: it
    happens only if the window, combined with the stored one, stays in order."""
    start = changes.get("registration_start", Semester.registration_start)
    end = changes.get("registration_end", Semester.registration_end)
    statement = (
        update(Semester)
        .where(Semester.id == bindparam("semester"), start < end)
        .values(**changes, updated_at=func.now())
        .returning(*_READ_COLUMNS)
    )
    try:
        with session.begin():
            row = session.execute(statement, {"semester": semester_id, "now": now}).mappings().one_or_none()
            if row is None:
                ensure_semester_exists(session.connection(), semester_id=semester_id)
                raise RegistrationWindowInvalid()
    except IntegrityError as error:
        if getattr(error.orig, "pgcode", None) == UNIQUE_VIOLATION:
            raise SemesterNameTaken() from error
        raise
    return row
