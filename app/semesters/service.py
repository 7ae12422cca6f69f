"""Reading semesters: single statements on the read engine (autocommit)."""

from datetime import datetime

from sqlalchemy import Connection, DateTime, Engine, RowMapping, bindparam, select

from app.core.pagination import Page, PagedQuery, PageParams
from app.semesters.errors import SemesterNotFound
from app.semesters.models import Semester

# The window is judged at the app's `now`, the same clock registering judges it
# by (app/registrations/rules.py: start inclusive, end exclusive).
_NOW = bindparam("now", type_=DateTime(timezone=True))
_IS_REGISTRATION_OPEN = (Semester.registration_start <= _NOW) & (Semester.registration_end > _NOW)

# Exactly the fields of SemesterRead.
_SEMESTER_FIELDS = select(
    Semester.id,
    Semester.name,
    Semester.registration_start,
    Semester.registration_end,
    _IS_REGISTRATION_OPEN.label("is_registration_open"),
)
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
