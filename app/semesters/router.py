from datetime import UTC, datetime

from fastapi import APIRouter, Response

from app.core.db import SessionDep
from app.core.pagination import PageDep, total_header
from app.core.params import SemesterId
from app.core.responses import JSONBody
from app.semesters import service
from app.semesters.models import Semester
from app.semesters.schemas import SemesterRead

router = APIRouter(prefix="/semesters", tags=["semesters"])

_SEMESTER = JSONBody(SemesterRead)
_SEMESTER_LIST = JSONBody(list[SemesterRead])


def _to_read(semester: Semester, now: datetime) -> SemesterRead:
    return SemesterRead(
        id=semester.id,
        name=semester.name,
        registration_start=semester.registration_start,
        registration_end=semester.registration_end,
        is_registration_open=semester.is_registration_open(now),
    )


@router.get("/", response_model=list[SemesterRead])
def list_semesters(page: PageDep, session: SessionDep) -> Response:
    """All semesters, oldest registration window first; the total is in `X-Total-Count`."""
    result = service.list_semesters(session, page=page)
    now = datetime.now(UTC)
    semesters = [_to_read(semester, now) for semester in result.items]
    return _SEMESTER_LIST.response(semesters, headers=total_header(result))


@router.get("/{semester_id}", response_model=SemesterRead)
def read_semester(semester_id: SemesterId, session: SessionDep) -> Response:
    return _SEMESTER.response(_to_read(service.get_semester(session, semester_id=semester_id), datetime.now(UTC)))
