from datetime import UTC, datetime

from fastapi import APIRouter, Response

from app.core.db import CatalogueEngineDep
from app.core.openapi import DATABASE, INPUT, TOTAL_COUNT_HEADER_DOC, errors, ok
from app.core.pagination import PageDep, total_header
from app.core.params import SemesterId
from app.core.responses import JSONBody
from app.semesters import service
from app.semesters.schemas import SemesterRead

router = APIRouter(prefix="/semesters", tags=["semesters"])

_SEMESTER = JSONBody(SemesterRead)
_SEMESTER_LIST = JSONBody(list[SemesterRead])


@router.get(
    "/", response_model=list[SemesterRead], responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(INPUT, DATABASE)}
)
@router.get("", response_model=list[SemesterRead], include_in_schema=False)  # the same, without a redirect
def list_semesters(page: PageDep, engine: CatalogueEngineDep) -> Response:
    """All semesters, oldest registration window first; the total is in `X-Total-Count`."""
    result = service.list_semesters(engine, page=page, now=datetime.now(UTC))
    return _SEMESTER_LIST.response(result.items, headers=total_header(result))


@router.get("/{semester_id}", response_model=SemesterRead, responses=errors(INPUT, DATABASE, ("SEMESTER_NOT_FOUND",)))
def read_semester(semester_id: SemesterId, engine: CatalogueEngineDep) -> Response:
    return _SEMESTER.response(service.get_semester(engine, semester_id=semester_id, now=datetime.now(UTC)))
