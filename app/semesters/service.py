from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import SemesterNotFound
from app.core.pagination import Page, PageParams, paginate_scalars
from app.semesters.models import Semester


def list_semesters(session: Session, *, page: PageParams) -> Page[Semester]:
    statement = select(Semester).order_by(Semester.registration_start, Semester.id)
    with session.begin():
        return paginate_scalars(session, statement, page)


def get_semester(session: Session, *, semester_id: int) -> Semester:
    with session.begin():
        semester = session.get(Semester, semester_id)
    if semester is None:
        raise SemesterNotFound()
    return semester


def ensure_semester_exists(session: Session, *, semester_id: int) -> None:
    exists = session.scalar(select(Semester.id).where(Semester.id == semester_id))
    if exists is None:
        raise SemesterNotFound()
