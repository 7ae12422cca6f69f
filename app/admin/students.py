"""/admin/students: accounts, limits, holds, transcripts, appointments, registering and
dropping on a student's behalf, and a student's audit trail. Every change to what the
registration rules read about a student takes that student's lock first."""

from fastapi import APIRouter, Request, Response, status

from app.admin.dependencies import RegistrarContext
from app.core.db import ReadEngineDep, SessionDep
from app.core.openapi import BODY, DATABASE, INPUT, REGISTRAR, TOTAL_COUNT_HEADER_DOC, WRITE, errors, ok
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, HoldId, SemesterId, StudentNumber
from app.core.responses import JSONBody
from app.registrations.router import RULE_REFUSALS
from app.registrations.schemas import AdminEventRead, DropRead, RegistrationRead
from app.students import service
from app.students.schemas import (
    AdminHoldRead,
    AdminStudentRead,
    AppointmentRead,
    AppointmentUpdate,
    CompletedCourseCreate,
    HoldCreate,
    StudentCreate,
    StudentUpdate,
)

router = APIRouter(prefix="/students")

_EVENTS = JSONBody(list[AdminEventRead])
STUDENT = ("STUDENT_NOT_FOUND",)


@router.post(
    "",
    response_model=AdminStudentRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(REGISTRAR, BODY, WRITE),
)
def create_student(body: StudentCreate, session: SessionDep, request: Request) -> object:
    """A new student account; a student number taken is 409 CONFLICT."""
    return service.create_student(session, **body.model_dump(), bcrypt_rounds=request.app.state.settings.bcrypt_rounds)


@router.patch(
    "/{student_number}",
    response_model=AdminStudentRead,
    responses=errors(REGISTRAR, BODY, WRITE, STUDENT),
)
def update_student(student_number: StudentNumber, body: StudentUpdate, session: SessionDep) -> object:
    """The name and the student's own credit limit (`max_credits: null`: the default again).
    A limit below what the student holds removes nothing; their next registration is refused."""
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("name", "") is None:
        del changes["name"]  # name: null means unchanged
    return service.update_student(session, student_number=student_number, changes=changes)


@router.post(
    "/{student_number}/holds",
    response_model=AdminHoldRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(REGISTRAR, BODY, WRITE, STUDENT),
)
def place_hold(
    student_number: StudentNumber, body: HoldCreate, session: SessionDep, context: RegistrarContext
) -> object:
    """A hold: the student's registrations are refused (403 REGISTRATION_HOLD) until it is
    lifted; drops never are. Recorded as HOLD_PLACED."""
    return service.place_hold(session, student_number=student_number, reason=body.reason, context=context)


@router.delete(
    "/{student_number}/holds/{hold_id}",
    response_model=AdminHoldRead,
    responses=errors(REGISTRAR, INPUT, WRITE, (*STUDENT, "HOLD_NOT_FOUND")),
)
def lift_hold(student_number: StudentNumber, hold_id: HoldId, session: SessionDep, context: RegistrarContext) -> object:
    """Lift an active hold (it stays on record with who lifted it and when); recorded as
    HOLD_LIFTED. An unknown or already lifted hold is 404 HOLD_NOT_FOUND."""
    return service.lift_hold(session, student_number=student_number, hold_id=hold_id, context=context)


@router.post(
    "/{student_number}/completed-courses",
    response_model=AdminStudentRead,
    responses=errors(REGISTRAR, BODY, WRITE, STUDENT),
)
def add_completed_course(student_number: StudentNumber, body: CompletedCourseCreate, session: SessionDep) -> object:
    """Add a course code to the student's transcript (prerequisites are checked against it);
    adding one already there changes nothing."""
    return service.add_completed_course(session, student_number=student_number, course_code=body.course_code)


@router.put(
    "/{student_number}/appointments/{semester_id}",
    response_model=AppointmentRead,
    responses=errors(REGISTRAR, BODY, WRITE, (*STUDENT, "SEMESTER_NOT_FOUND")),
)
def set_appointment(
    student_number: StudentNumber, semester_id: SemesterId, body: AppointmentUpdate, session: SessionDep
) -> object:
    """When the student may start registering in the semester (null: with the semester);
    before it, their registrations are refused with APPOINTMENT_NOT_STARTED."""
    return service.set_appointment(
        session,
        student_number=student_number,
        semester_id=semester_id,
        registration_opens_at=body.registration_opens_at,
    )


@router.post(
    "/{student_number}/courses/{course_id}/register",
    response_model=RegistrationRead,
    responses=errors(REGISTRAR, INPUT, WRITE, RULE_REFUSALS, (*STUDENT, "COURSE_NOT_FOUND", "COURSE_FULL")),
)
def register_student_for_course(
    student_number: StudentNumber, course_id: CourseId, session: SessionDep, context: RegistrarContext
) -> object:
    """Register the student exactly as if they asked themselves (every rule, a seat or the
    reserve list); the audit trail names the registrar as the actor."""
    return service.register_for_student(session, student_number=student_number, course_id=course_id, context=context)


@router.post(
    "/{student_number}/courses/{course_id}/drop",
    response_model=DropRead,
    responses=errors(REGISTRAR, INPUT, WRITE, (*STUDENT, "COURSE_NOT_FOUND", "NOT_REGISTERED", "REGISTRATION_CLOSED")),
)
def drop_student_from_course(
    student_number: StudentNumber, course_id: CourseId, session: SessionDep, context: RegistrarContext
) -> object:
    """Drop the student's registration exactly as if they asked themselves (an enrolled drop
    promotes reserve position 1); the audit trail names the registrar as the actor."""
    return service.drop_for_student(session, student_number=student_number, course_id=course_id, context=context)


@router.get(
    "/{student_number}/events",
    response_model=list[AdminEventRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(REGISTRAR, INPUT, DATABASE, STUDENT)},
)
def list_student_events(student_number: StudentNumber, page: PageDep, engine: ReadEngineDep) -> Response:
    """The student's audit trail in every semester, newest first: registrations, promotions,
    drops, swaps, cancellations, holds placed and lifted."""
    result = service.list_student_events(engine, student_number=student_number, page=page)
    return _EVENTS.response(result.items, headers=total_header(result))
