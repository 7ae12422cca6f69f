"""Registering, dropping and promoting: the only code that writes registrations.

Every write is one short transaction that first locks the course row (and only
that row) with SELECT ... FOR UPDATE. Holding that lock, it reads the course's
counters, decides, writes, and commits. The counters on `courses` make every
decision O(1): nothing here locks, loads or counts the course's enrolled rows.
While the lock is held each call makes as few round trips as it can, because
the lock is what limits the throughput of a popular course.
"""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from pydantic import Field
from sqlalchemy import Engine, Integer, Row, RowMapping, Table, bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.errors import InvalidToken
from app.core.db import rows_affected
from app.core.pagination import Page, PagedQuery, PageParams
from app.courses.errors import CourseNotFound
from app.courses.models import Course
from app.idempotency import service as idempotency
from app.idempotency.service import IdempotentRequest
from app.registrations.errors import AlreadyRegistered, CourseFull, NotRegistered
from app.registrations.models import CourseRegistration, RegistrationStatus
from app.registrations.rules import SeatCounters, ensure_window_open, place_registration, vacate
from app.registrations.schemas import DropRead, RegistrationRead
from app.semesters.models import Semester
from app.semesters.service import ensure_semester_exists

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)

# The locked course row: its counters and its semester's window (see _LOCK_COURSE).
LockedCourse = Row[*tuple[Any, ...]]


class RegistrationResult(RegistrationRead):
    """The answer to a register, as the client sees it."""

    # True when an Idempotency-Key retry got the stored first answer; never in the body.
    replayed: bool = Field(default=False, exclude=True)


class DropResult(DropRead):
    """The answer to a drop, as the client sees it."""

    replayed: bool = Field(default=False, exclude=True)


# The statements that run while a course row is locked are built once, here, on
# the tables rather than the ORM entities: executing them then costs no SQL
# construction, no cache-key generation and no ORM bookkeeping, and the lock is
# held for as little Python as possible (docs/performance.md).
# (`__table__` is typed as any FromClause; on a mapped class it is its Table.)
_courses = cast(Table, Course.__table__)
_registrations = cast(Table, CourseRegistration.__table__)
_semesters = cast(Table, Semester.__table__)

# FOR UPDATE OF courses: the semester is joined only to read its window, and must
# not be locked, or every registration in the semester would serialise.
_LOCK_COURSE = (
    select(
        _courses.c.max_capacity,
        _courses.c.reserve_limit,
        _courses.c.enrolled_count,
        _courses.c.reserved_count,
        _semesters.c.registration_start,
        _semesters.c.registration_end,
    )
    .join_from(_courses, _semesters, _semesters.c.id == _courses.c.semester_id)
    .where(_courses.c.id == bindparam("course"))
    .with_for_update(of=_courses)
)

# Bind parameters never share a column's name: in an UPDATE, SQLAlchemy would
# take such a parameter as a value to SET.

# Registering is one statement: insert the row, and move the course's counters
# only if the row went in. The insert does nothing when the student already has a
# registration for the course; then the update (which needs the new row) does
# nothing either, and the caller sees rowcount 0.
_new_registration = (
    insert(_registrations)
    .values(
        student_id=bindparam("student"),
        course_id=bindparam("course"),
        status=bindparam("new_status", type_=_registrations.c.status.type),
        reserve_position=bindparam("new_position", type_=Integer),
    )
    .on_conflict_do_nothing(index_elements=["student_id", "course_id"])
    .returning(_registrations.c.id)
    .cte("new_registration")
)
_INSERT_REGISTRATION_AND_COUNT = (
    update(_courses)
    .where(_courses.c.id == bindparam("course"), select(_new_registration.c.id).exists())
    .values(
        enrolled_count=bindparam("new_enrolled_count"),
        reserved_count=bindparam("new_reserved_count"),
        updated_at=func.now(),
    )
    .add_cte(_new_registration)
)

_FOREIGN_KEY_VIOLATION = "23503"

_DELETE_REGISTRATION = (
    delete(_registrations)
    .where(
        _registrations.c.student_id == bindparam("student"),
        _registrations.c.course_id == bindparam("course"),
    )
    .returning(_registrations.c.status, _registrations.c.reserve_position)
)
_SET_COUNTERS = (
    update(_courses)
    .where(_courses.c.id == bindparam("course"))
    .values(
        enrolled_count=bindparam("new_enrolled_count"),
        reserved_count=bindparam("new_reserved_count"),
        updated_at=func.now(),
    )
)
# Everyone behind the vacated position moves up one; whoever reaches position 0
# is enrolled (a freed seat counts as "position 0"). Same statement as the
# counter update, to save a round trip; it returns the promoted student, if any.
_shifted = (
    update(_registrations)
    .where(
        _registrations.c.course_id == bindparam("course"),
        _registrations.c.reserve_position > bindparam("vacated_position", type_=Integer),
    )
    .values(
        status=case(
            (_registrations.c.reserve_position == 1, RegistrationStatus.ENROLLED),
            else_=_registrations.c.status,
        ),
        reserve_position=func.nullif(_registrations.c.reserve_position - 1, 0),
        updated_at=func.now(),
    )
    .returning(_registrations.c.student_id, _registrations.c.status)
    .cte("shifted")
)
_SHIFT_RESERVE_LIST_AND_SET_COUNTERS = _SET_COUNTERS.add_cte(_shifted).returning(
    select(_shifted.c.student_id).where(_shifted.c.status == RegistrationStatus.ENROLLED).scalar_subquery()
)


_Answer = TypeVar("_Answer", RegistrationResult, DropResult)


def _locked_write(
    session: Session,
    *,
    action: str,
    student_id: uuid.UUID,
    course_id: int,
    now: datetime,
    idempotency_key: str | None,
    idempotency_ttl: timedelta,
    answer_type: type[_Answer],
    decide_and_write: Callable[[LockedCourse], _Answer],
) -> _Answer:
    """The skeleton of every locked registration write: one transaction that

    1. locks the course row (the only lock it takes) and reads its counters and window;
    2. replays the stored answer when this is a retry of an Idempotency-Key;
    3. refuses outside the registration window;
    4. decides and writes (`decide_and_write`, given the locked row);
    5. stores the answer for retries, in the same transaction as the change.

    Any error rolls the whole transaction back: nothing is stored for a refusal.
    """
    retry = IdempotentRequest(student_id, idempotency_key, f"{action}:{course_id}") if idempotency_key else None
    with session.begin():
        course = _lock_course(session, course_id=course_id)
        if retry and (stored := idempotency.find_stored_response(session, retry, now=now)):
            return answer_type.model_validate({**stored, "replayed": True})
        ensure_window_open(
            registration_start=course.registration_start, registration_end=course.registration_end, now=now
        )
        answer = decide_and_write(course)
        if retry:
            body = answer.model_dump(mode="json")
            idempotency.store_response(session, retry, body=body, now=now, ttl=idempotency_ttl)
    return answer


def _lock_course(session: Session, *, course_id: int) -> LockedCourse:
    """Lock the course row and return its counters and registration window."""
    course = session.execute(_LOCK_COURSE, {"course": course_id}).one_or_none()
    if course is None:
        raise CourseNotFound()
    return course


def _seat_counters(course: LockedCourse) -> SeatCounters:
    return SeatCounters(course.max_capacity, course.reserve_limit, course.enrolled_count, course.reserved_count)


def _is_registered(session: Session, *, student_id: uuid.UUID, course_id: int) -> bool:
    registration = session.scalar(
        select(CourseRegistration.id).where(
            CourseRegistration.student_id == student_id, CourseRegistration.course_id == course_id
        )
    )
    return registration is not None


def register(
    session: Session,
    *,
    student_id: uuid.UUID,
    course_id: int,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
) -> RegistrationResult:
    """Enroll while seats are free, else join the tail of the reserve list."""

    def decide_and_write(course: LockedCourse) -> RegistrationResult:
        try:
            placement = place_registration(_seat_counters(course))
        except CourseFull:
            # Full: an existing registration is the better answer to give.
            if _is_registered(session, student_id=student_id, course_id=course_id):
                raise AlreadyRegistered() from None
            raise
        try:
            counted = session.execute(
                _INSERT_REGISTRATION_AND_COUNT,
                {
                    "student": student_id,
                    "course": course_id,
                    "new_status": placement.status,
                    "new_position": placement.reserve_position,
                    "new_enrolled_count": placement.enrolled_count,
                    "new_reserved_count": placement.reserved_count,
                },
            )
        except IntegrityError as error:
            # A validly signed token whose student has since been deleted.
            if getattr(error.orig, "pgcode", None) == _FOREIGN_KEY_VIOLATION:
                raise InvalidToken("The student in this token no longer exists") from error
            raise
        if rows_affected(counted) == 0:
            raise AlreadyRegistered()
        return RegistrationResult(
            course_id=course_id, status=placement.status, reserve_position=placement.reserve_position
        )

    return _locked_write(
        session,
        action="register",
        student_id=student_id,
        course_id=course_id,
        now=now,
        idempotency_key=idempotency_key,
        idempotency_ttl=idempotency_ttl,
        answer_type=RegistrationResult,
        decide_and_write=decide_and_write,
    )


def drop(
    session: Session,
    *,
    student_id: uuid.UUID,
    course_id: int,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
) -> DropResult:
    """Remove the student's registration; the reserve list behind it moves up by one.

    Dropping an enrolled registration frees a seat, which reserve position 1 takes
    at once. Dropping a reserved one closes the gap it leaves in the list.
    """

    def decide_and_write(course: LockedCourse) -> DropResult:
        dropped = session.execute(_DELETE_REGISTRATION, {"student": student_id, "course": course_id}).one_or_none()
        if dropped is None:
            raise NotRegistered()
        vacancy = vacate(
            _seat_counters(course), dropped_status=dropped.status, dropped_position=dropped.reserve_position
        )
        counters = {
            "course": course_id,
            "new_enrolled_count": vacancy.enrolled_count,
            "new_reserved_count": vacancy.reserved_count,
        }
        promoted_student_id = None
        if vacancy.vacated_position is None:
            session.execute(_SET_COUNTERS, counters)
        else:
            promoted_student_id = session.scalar(
                _SHIFT_RESERVE_LIST_AND_SET_COUNTERS, {**counters, "vacated_position": vacancy.vacated_position}
            )
        return DropResult(
            course_id=course_id,
            dropped_status=dropped.status,
            promoted_student_id=promoted_student_id,
            promoted_from_position=1 if promoted_student_id is not None else None,
        )

    return _locked_write(
        session,
        action="drop",
        student_id=student_id,
        course_id=course_id,
        now=now,
        idempotency_key=idempotency_key,
        idempotency_ttl=idempotency_ttl,
        answer_type=DropResult,
        decide_and_write=decide_and_write,
    )


# Shaped like MyCourseRead. The page alone is one statement in the common case;
# an empty page also asks whether the semester exists (404 or an empty list).
_MY_COURSES = PagedQuery(
    select(
        CourseRegistration.course_id,
        Course.course_name,
        Course.professor,
        Course.schedule,
        CourseRegistration.status,
        CourseRegistration.reserve_position,
        CourseRegistration.created_at.label("registered_at"),
    )
    .join(Course, Course.id == CourseRegistration.course_id)
    .where(Course.semester_id == bindparam("semester"), CourseRegistration.student_id == bindparam("student"))
    .order_by(CourseRegistration.course_id)
)


def list_my_courses(engine: Engine, *, student_id: uuid.UUID, semester_id: int, page: PageParams) -> Page[RowMapping]:
    """A page of the student's registrations in a semester, on the read engine.

    Never cached: a student reads it right after registering or dropping, and
    reserve positions move whenever someone ahead drops.
    """
    with engine.connect() as connection:
        result = _MY_COURSES.fetch(connection, page, semester=semester_id, student=student_id)
        if result.total == 0:
            ensure_semester_exists(connection, semester_id=semester_id)
    return result
