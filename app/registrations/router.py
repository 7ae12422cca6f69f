from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.auth.dependencies import CurrentStudent
from app.core.db import ReadEngineDep, SessionDep
from app.core.openapi import (
    AUTHENTICATED,
    DATABASE,
    INPUT,
    REPLAYED_HEADER_DOC,
    TOTAL_COUNT_HEADER_DOC,
    WRITE,
    errors,
    ok,
)
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody
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

_REGISTRATION = JSONBody(RegistrationRead)
_DROP = JSONBody(DropRead)
_MY_COURSES = JSONBody(list[MyCourseRead])


def _idempotency_ttl(request: Request) -> timedelta:
    return timedelta(hours=request.app.state.settings.idempotency_key_ttl_hours)


def _replay_header(result: service.RegistrationResult | service.DropResult) -> dict[str, str]:
    return {REPLAYED_HEADER: "true"} if result.replayed else {}


@router.post(
    "/courses/{course_id}/register",
    response_model=RegistrationRead,
    responses={
        **ok(replayed=REPLAYED_HEADER_DOC),
        **errors(
            AUTHENTICATED,
            INPUT,
            WRITE,
            ("COURSE_NOT_FOUND", "ALREADY_REGISTERED", "COURSE_FULL", "REGISTRATION_CLOSED", "IDEMPOTENCY_KEY_REUSED"),
        ),
    },
)
def register_for_course(
    course_id: CourseId,
    student: CurrentStudent,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Enroll if a seat is free, else join the reserve list (`status: RESERVED`)."""
    result = service.register(
        session,
        student_id=student.student_id,
        course_id=course_id,
        now=datetime.now(UTC),
        idempotency_key=idempotency_key,
        idempotency_ttl=_idempotency_ttl(request),
    )
    return _REGISTRATION.response(result, headers=_replay_header(result))


@router.post(
    "/courses/{course_id}/drop",
    response_model=DropRead,
    responses={
        **ok(replayed=REPLAYED_HEADER_DOC),
        **errors(
            AUTHENTICATED,
            INPUT,
            WRITE,
            ("COURSE_NOT_FOUND", "NOT_REGISTERED", "REGISTRATION_CLOSED", "IDEMPOTENCY_KEY_REUSED"),
        ),
    },
)
def drop_course(
    course_id: CourseId,
    student: CurrentStudent,
    session: SessionDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Drop a registration; an enrolled drop promotes reserve position 1 at once."""
    result = service.drop(
        session,
        student_id=student.student_id,
        course_id=course_id,
        now=datetime.now(UTC),
        idempotency_key=idempotency_key,
        idempotency_ttl=_idempotency_ttl(request),
    )
    return _DROP.response(result, headers=_replay_header(result))


@router.get(
    "/semesters/{semester_id}/my-courses",
    response_model=list[MyCourseRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND",))},
)
def list_my_courses(semester_id: SemesterId, page: PageDep, student: CurrentStudent, engine: ReadEngineDep) -> Response:
    """My registrations in the semester, with live reserve positions."""
    result = service.list_my_courses(engine, student_id=student.student_id, semester_id=semester_id, page=page)
    return _MY_COURSES.response(result.items, headers=total_header(result))
