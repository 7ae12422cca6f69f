"""/admin courses: create and edit them (a capacity raise promotes at once), cancel them,
their rosters (JSON or CSV) and their audit trail."""

import csv
import io
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import RowMapping

from app.admin.dependencies import RegistrarContext
from app.core.db import ReadEngineDep, SessionDep
from app.core.openapi import BODY, DATABASE, INPUT, REGISTRAR, TOTAL_COUNT_HEADER_DOC, WRITE, errors, ok
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody
from app.courses import service
from app.courses.schemas import CourseCancelRead, CourseCreate, CourseRead, CourseUpdate
from app.registrations import service as registrations
from app.registrations.schemas import ROSTER_CSV_COLUMNS, AdminEventRead, RosterEntry

router = APIRouter()

_ROSTER = JSONBody(list[RosterEntry])
_EVENTS = JSONBody(list[AdminEventRead])
CSV_MEDIA_TYPE = "text/csv"


@router.post(
    "/semesters/{semester_id}/courses",
    response_model=CourseRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(REGISTRAR, BODY, WRITE, ("SEMESTER_NOT_FOUND",)),
)
def create_course(semester_id: SemesterId, body: CourseCreate, session: SessionDep) -> object:
    """A new course in the semester. `schedule` is derived from `meetings` (given only for a
    course without meetings). A code or name taken in the semester is 409 CONFLICT."""
    return service.create_course(session, semester_id=semester_id, values=body.model_dump())


@router.patch(
    "/courses/{course_id}",
    response_model=CourseRead,
    responses=errors(
        REGISTRAR,
        BODY,
        WRITE,
        ("COURSE_NOT_FOUND", "COURSE_HAS_REGISTRATIONS", "CAPACITY_BELOW_ENROLLED", "RESERVE_BELOW_RESERVED"),
    ),
)
def update_course(course_id: CourseId, body: CourseUpdate, session: SessionDep, context: RegistrarContext) -> object:
    """Any of the course's fields (those sent; null: unchanged), in one transaction under the
    course's lock. A `max_capacity` raise promotes the reserve list's head at once, first come
    first served; nobody is ever removed (CAPACITY_BELOW_ENROLLED, RESERVE_BELOW_RESERVED).
    `credits`, `meetings` and `prerequisites` change only while nobody is registered
    (COURSE_HAS_REGISTRATIONS): registered students were judged on the old values."""
    changes = body.model_dump(exclude_none=True)
    return service.update_course(session, course_id=course_id, changes=changes, context=context)


@router.post(
    "/courses/{course_id}/cancel",
    response_model=CourseCancelRead,
    responses=errors(REGISTRAR, INPUT, WRITE, ("COURSE_NOT_FOUND",)),
)
def cancel_course(course_id: CourseId, session: SessionDep, context: RegistrarContext) -> CourseCancelRead:
    """End every registration of the course (each recorded as CANCELLED, nobody promoted) and
    refuse new ones with COURSE_CANCELLED. Calling it again finishes an interrupted cancel."""
    ended = registrations.cancel_course(session, course_id=course_id, context=context)
    return CourseCancelRead(course_id=course_id, ended_registrations=ended)


def wants_csv(accept: str | None) -> bool:
    """`text/csv` when the client prefers it to JSON (its q-value is higher, or JSON is not
    named); JSON otherwise, wildcards included."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media_type, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type.lower()] = max(weight, weights.get(media_type.lower(), 0.0))
    return weights.get(CSV_MEDIA_TYPE, 0.0) > weights.get("application/json", 0.0)


def roster_csv(rows: Sequence[RowMapping]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ROSTER_CSV_COLUMNS)
    for row in rows:
        entry = RosterEntry.model_validate(row)
        writer.writerow(
            [
                entry.student_number,
                entry.name,
                entry.status.value,
                "" if entry.reserve_position is None else entry.reserve_position,
                entry.registered_at.isoformat(),
            ]
        )
    return buffer.getvalue()


@router.get(
    "/courses/{course_id}/roster",
    response_model=list[RosterEntry],
    responses={
        200: {
            "description": "The enrolled students in the order they registered, then the reserve list in "
            "position order; as JSON, or as CSV (a header row, then one row per student) with `Accept: text/csv`",
            "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **errors(REGISTRAR, INPUT, DATABASE, ("COURSE_NOT_FOUND",)),
    },
)
def read_course_roster(course_id: CourseId, engine: ReadEngineDep, request: Request) -> Response:
    """Who is in the course: enrolled, then reserved by position."""
    rows = registrations.course_roster(engine, course_id=course_id)
    if wants_csv(request.headers.get("accept")):
        return Response(roster_csv(rows), media_type=CSV_MEDIA_TYPE)
    return _ROSTER.response(rows)


@router.get(
    "/courses/{course_id}/events",
    response_model=list[AdminEventRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(REGISTRAR, INPUT, DATABASE, ("COURSE_NOT_FOUND",))},
)
def list_course_events(course_id: CourseId, page: PageDep, engine: ReadEngineDep) -> Response:
    """The course's audit trail, newest first: registrations, promotions, drops, swaps,
    capacity changes, cancellations, each with its actor and request id."""
    result = registrations.list_course_events(engine, course_id=course_id, page=page)
    return _EVENTS.response(result.items, headers=total_header(result))
