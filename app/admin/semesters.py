"""/admin/semesters: open a term, rename it, move its registration window."""

from datetime import UTC, datetime

from fastapi import APIRouter, status

from app.core.db import SessionDep
from app.core.openapi import BODY, REGISTRAR, WRITE, errors
from app.core.params import SemesterId
from app.semesters import service
from app.semesters.schemas import SemesterCreate, SemesterRead, SemesterUpdate

router = APIRouter()


@router.post(
    "/semesters",
    response_model=SemesterRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(REGISTRAR, BODY, WRITE),
)
def create_semester(body: SemesterCreate, session: SessionDep) -> object:
    """A new semester; a name taken is 409 CONFLICT, a window whose end is not after its start 422."""
    return service.create_semester(session, **body.model_dump(), now=datetime.now(UTC))


@router.patch(
    "/semesters/{semester_id}",
    response_model=SemesterRead,
    responses=errors(REGISTRAR, BODY, WRITE, ("SEMESTER_NOT_FOUND",)),
)
def update_semester(semester_id: SemesterId, body: SemesterUpdate, session: SessionDep) -> object:
    """Rename the semester or move its window (the fields sent, null: unchanged). The window,
    combined with the stored one, must end after it starts (else 422)."""
    changes = body.model_dump(exclude_none=True)
    return service.update_semester(session, semester_id=semester_id, changes=changes, now=datetime.now(UTC))
