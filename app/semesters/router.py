from datetime import UTC, datetime

from fastapi import APIRouter, Response

from app.core.db import SessionDep
from app.core.pagination import PageDep, set_total_header
from app.core.params import SemesterId
from app.semesters import service
from app.semesters.models import Semester
from app.semesters.schemas import SemesterRead

router = APIRouter(prefix="/semesters", tags=["semesters"])


def _to_read(semester: Semester, now: datetime) -> SemesterRead:
    return SemesterRead(
        id=semester.id,
        name=semester.name,
        registration_start=semester.registration_start,
        registration_end=semester.registration_end,
        is_registration_open=semester.is_registration_open(now),
    )


@router.get("/", response_model=list[SemesterRead])
def list_semesters(page: PageDep, session: SessionDep, response: Response) -> list[SemesterRead]:
    """All semesters, oldest registration window first; the total is in `X-Total-Count`."""
    result = service.list_semesters(session, page=page)
    set_total_header(response, result)
    now = datetime.now(UTC)
    return [_to_read(semester, now) for semester in result.items]


@router.get("/{semester_id}", response_model=SemesterRead)
def read_semester(semester_id: SemesterId, session: SessionDep) -> SemesterRead:
    return _to_read(service.get_semester(session, semester_id=semester_id), datetime.now(UTC))
