from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.auth.dependencies import CurrentStudent
from app.core.db import SessionDep
from app.core.pagination import PageDep, set_total_header
from app.core.params import CourseId, SemesterId
from app.registrations import service
from app.registrations.schemas import DropRead, MyCourseRead, RegistrationRead

router = APIRouter(tags=["registrations"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",  # visible ASCII
        description="Retry-safe key: a retry with the same key replays the first successful answer",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


def _idempotency_ttl(request: Request) -> timedelta:
    return timedelta(hours=request.app.state.settings.idempotency_key_ttl_hours)


def _mark_replay(response: Response, result: service.RegistrationResult | service.DropResult) -> None:
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"


@router.post("/courses/{course_id}/register", response_model=RegistrationRead)
def register_for_course(
    course_id: CourseId,
    student: CurrentStudent,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RegistrationRead:
    """Enroll if a seat is free, else join the reserve list (`status: RESERVED`)."""
    result = service.register(
        session,
        student_id=student.student_id,
        course_id=course_id,
        now=datetime.now(UTC),
        idempotency_key=idempotency_key,
        idempotency_ttl=_idempotency_ttl(request),
    )
    _mark_replay(response, result)
    return RegistrationRead.model_validate(result)


@router.post("/courses/{course_id}/drop", response_model=DropRead)
def drop_course(
    course_id: CourseId,
    student: CurrentStudent,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> DropRead:
    """Drop a registration; an enrolled drop promotes reserve position 1 at once."""
    result = service.drop(
        session,
        student_id=student.student_id,
        course_id=course_id,
        now=datetime.now(UTC),
        idempotency_key=idempotency_key,
        idempotency_ttl=_idempotency_ttl(request),
    )
    _mark_replay(response, result)
    return DropRead.model_validate(result)


@router.get("/semesters/{semester_id}/my-courses", response_model=list[MyCourseRead])
def list_my_courses(
    semester_id: SemesterId, page: PageDep, student: CurrentStudent, session: SessionDep, response: Response
) -> list[MyCourseRead]:
    """My registrations in the semester, with live reserve positions."""
    result = service.list_my_courses(session, student_id=student.student_id, semester_id=semester_id, page=page)
    set_total_header(response, result)
    return [MyCourseRead.model_validate(course) for course in result.items]
