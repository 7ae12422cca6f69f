import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from app.auth.dependencies import CurrentStudent
from app.core.db import ReadEngineDep, SessionDep
from app.core.openapi import (
    AUTHENTICATED,
    BODY,
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
from app.registrations.schemas import (
    DropRead,
    EventRead,
    MyCourseRead,
    MyStatusRead,
    RegistrationRead,
    SwapRead,
    SwapRequest,
)
from app.waiting_room.dependencies import ADMISSION, AdmissionToken, check_admission

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
_SWAP = JSONBody(SwapRead)
_MY_STATUS = JSONBody(MyStatusRead)
_HISTORY = JSONBody(list[EventRead])
_MY_COURSES = JSONBody(list[MyCourseRead])


@dataclass(frozen=True, slots=True)
class AdmittedWrite:
    """A student's registration write, let through: who writes, and the service's context."""

    student_id: uuid.UUID
    context: service.WriteContext


async def admit_student_write(
    request: Request,
    course_id: CourseId,
    student: CurrentStudent,
    idempotency_key: IdempotencyKey = None,
    admission_token: AdmissionToken = None,
) -> AsyncIterator[AdmittedWrite]:
    """Everything a register, drop or swap passes before its transaction, on the event loop:

    1. the waiting room, when the course's semester has one on (app/waiting_room/dependencies.py);
    2. a place among the worker's registration writes in progress (app/core/admission.py),
       keyed by the course (one course may hold only part of the places), and held until the
       answer is ready; waiting for it holds no thread and no connection;
    3. who writes, when, and how a retry is recognised.

    One dependency rather than one per step: FastAPI spends about 20 us of the worker's CPU
    on each dependency it solves, on every request (docs/performance.md)."""
    await check_admission(request, course_id=course_id, student=student, admission_token=admission_token)
    settings = request.app.state.settings
    async with request.app.state.write_gate.admit(course_id):
        yield AdmittedWrite(
            student_id=student.student_id,
            context=service.WriteContext(
                now=datetime.now(UTC),
                actor=f"student:{student.student_id}",
                request_id=getattr(request.state, "request_id", None),
                idempotency_key=idempotency_key,
                idempotency_ttl=timedelta(hours=settings.idempotency_key_ttl_hours),
                default_max_credits=settings.default_max_credits,
            ),
        )


StudentWrite = Annotated[AdmittedWrite, Depends(admit_student_write)]


async def admit_read(request: Request) -> AsyncIterator[None]:
    """The same for reads of one's own data: their own gate, so writes never starve them."""
    async with request.app.state.read_gate.admit():
        yield


AdmittedRead = Depends(admit_read)

# Rule refusals of registering (app/registrations/rules.py), in their order.
RULE_REFUSALS = (
    "REGISTRATION_CLOSED",
    "COURSE_CANCELLED",
    "APPOINTMENT_NOT_STARTED",
    "REGISTRATION_HOLD",
    "ALREADY_REGISTERED",
    "PREREQUISITE_MISSING",
    "SCHEDULE_CONFLICT",
    "CREDIT_LIMIT_EXCEEDED",
)


def _replay_header(result: service.RegistrationResult | service.DropResult | service.SwapResult) -> dict[str, str]:
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
            ADMISSION,
            RULE_REFUSALS,
            ("COURSE_NOT_FOUND", "COURSE_FULL", "IDEMPOTENCY_KEY_REUSED"),
        ),
    },
)
def register_for_course(course_id: CourseId, write: StudentWrite, session: SessionDep) -> Response:
    """Every registration rule in order, then a seat if one is free, else the reserve list
    (`status: RESERVED`, which holds its credits and time slot)."""
    result = service.register(
        session, student_id=write.student_id, course_id=course_id, now=write.context.now, context=write.context
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
            ADMISSION,
            ("COURSE_NOT_FOUND", "NOT_REGISTERED", "REGISTRATION_CLOSED", "IDEMPOTENCY_KEY_REUSED"),
        ),
    },
)
def drop_course(course_id: CourseId, write: StudentWrite, session: SessionDep) -> Response:
    """Drop a registration; an enrolled drop promotes reserve position 1 at once."""
    result = service.drop(
        session, student_id=write.student_id, course_id=course_id, now=write.context.now, context=write.context
    )
    return _DROP.response(result, headers=_replay_header(result))


@router.post(
    "/courses/{course_id}/swap",
    response_model=SwapRead,
    responses={
        **ok(replayed=REPLAYED_HEADER_DOC),
        **errors(
            AUTHENTICATED,
            BODY,
            WRITE,
            ADMISSION,
            RULE_REFUSALS,
            ("COURSE_NOT_FOUND", "NOT_REGISTERED", "COURSE_FULL", "SWAP_NEEDS_SEAT", "SWAP_SAME_COURSE"),
            ("IDEMPOTENCY_KEY_REUSED",),
        ),
    },
)
def swap_course(course_id: CourseId, body: SwapRequest, write: StudentWrite, session: SessionDep) -> Response:
    """Trade `drop_course_id` for a seat in this course, in one transaction. Only a seat
    will do: if the course would give a reserve place, or any rule refuses, nothing
    changes and the student keeps the old course."""
    result = service.swap(
        session,
        student_id=write.student_id,
        course_id=course_id,
        drop_course_id=body.drop_course_id,
        now=write.context.now,
        context=write.context,
    )
    return _SWAP.response(result, headers=_replay_header(result))


@router.get(
    "/semesters/{semester_id}/my-courses",
    dependencies=[AdmittedRead],
    response_model=list[MyCourseRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND",))},
)
def list_my_courses(semester_id: SemesterId, page: PageDep, student: CurrentStudent, engine: ReadEngineDep) -> Response:
    """My registrations in the semester, with live reserve positions."""
    result = service.list_my_courses(engine, student_id=student.student_id, semester_id=semester_id, page=page)
    return _MY_COURSES.response(result.items, headers=total_header(result))


@router.get(
    "/semesters/{semester_id}/my-status",
    dependencies=[AdmittedRead],
    response_model=MyStatusRead,
    responses=errors(AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND",)),
)
def read_my_status(
    semester_id: SemesterId, student: CurrentStudent, engine: ReadEngineDep, request: Request
) -> Response:
    """My credits (ENROLLED and RESERVED), my limit, my appointment, and whether I may register now."""
    status = service.my_status(
        engine,
        student_id=student.student_id,
        semester_id=semester_id,
        now=datetime.now(UTC),
        default_max_credits=request.app.state.settings.default_max_credits,
    )
    return _MY_STATUS.response(status)


@router.get(
    "/semesters/{semester_id}/my-history",
    dependencies=[AdmittedRead],
    response_model=list[EventRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND",))},
)
def list_my_history(semester_id: SemesterId, page: PageDep, student: CurrentStudent, engine: ReadEngineDep) -> Response:
    """What happened to my registrations in the semester, newest first: enrolled, reserved,
    promoted, dropped, swapped, cancelled (positions follow from the order)."""
    result = service.list_my_history(engine, student_id=student.student_id, semester_id=semester_id, page=page)
    return _HISTORY.response(result.items, headers=total_header(result))
