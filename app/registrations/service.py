"""Registering, dropping and promoting: the only code that writes registrations.

Every write is one short transaction that first locks the course row (and only
that row) with SELECT ... FOR UPDATE. Holding that lock, it reads the course's
counters, decides, writes, and commits. The counters on `courses` make every
decision O(1): nothing here locks, loads or counts the course's enrolled rows.
While the lock is held each call makes as few round trips as it can, because
the lock is what limits the throughput of a popular course.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Integer, Row, RowMapping, bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import (
    AlreadyRegistered,
    CourseFull,
    CourseNotFound,
    InvalidToken,
    NotRegistered,
    RegistrationClosed,
)
from app.core.pagination import Page, PagedQuery, PageParams
from app.courses.models import Course
from app.idempotency import service as idempotency
from app.idempotency.service import IdempotentRequest
from app.registrations.models import CourseRegistration, RegistrationStatus
from app.semesters.models import Semester
from app.semesters.service import ensure_semester_exists

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    course_id: int
    status: RegistrationStatus
    reserve_position: int | None
    # True when an Idempotency-Key retry got the stored first answer.
    replayed: bool = False

    def response_body(self) -> dict:
        return {"course_id": self.course_id, "status": self.status.value, "reserve_position": self.reserve_position}

    @classmethod
    def replay(cls, body: dict) -> "RegistrationResult":
        return cls(body["course_id"], RegistrationStatus(body["status"]), body["reserve_position"], replayed=True)


@dataclass(frozen=True, slots=True)
class DropResult:
    course_id: int
    dropped_status: RegistrationStatus
    promoted_student_id: uuid.UUID | None
    promoted_from_position: int | None
    replayed: bool = False

    def response_body(self) -> dict:
        return {
            "course_id": self.course_id,
            "dropped_status": self.dropped_status.value,
            "promoted_student_id": str(self.promoted_student_id) if self.promoted_student_id else None,
            "promoted_from_position": self.promoted_from_position,
        }

    @classmethod
    def replay(cls, body: dict) -> "DropResult":
        promoted = body["promoted_student_id"]
        return cls(
            body["course_id"],
            RegistrationStatus(body["dropped_status"]),
            uuid.UUID(promoted) if promoted else None,
            body["promoted_from_position"],
            replayed=True,
        )


# The statements that run while a course row is locked are built once, here, on
# the tables rather than the ORM entities: executing them then costs no SQL
# construction, no cache-key generation and no ORM bookkeeping, and the lock is
# held for as little Python as possible (docs/performance.md).
_courses = Course.__table__
_registrations = CourseRegistration.__table__
_semesters = Semester.__table__

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


def _lock_course(session: Session, *, course_id: int) -> Row:
    """Lock the course row and return its counters and registration window."""
    course = session.execute(_LOCK_COURSE, {"course": course_id}).one_or_none()
    if course is None:
        raise CourseNotFound()
    return course


def _ensure_registration_open(course: Row, *, now: datetime) -> None:
    if not (course.registration_start <= now < course.registration_end):
        raise RegistrationClosed()


def _is_registered(session: Session, *, student_id: uuid.UUID, course_id: int) -> bool:
    return (
        session.scalar(
            select(CourseRegistration.id).where(
                CourseRegistration.student_id == student_id, CourseRegistration.course_id == course_id
            )
        )
        is not None
    )


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
    retry = IdempotentRequest(student_id, idempotency_key, f"register:{course_id}") if idempotency_key else None
    with session.begin():
        course = _lock_course(session, course_id=course_id)
        if retry and (stored := idempotency.find_stored_response(session, retry, now=now)):
            return RegistrationResult.replay(stored)
        _ensure_registration_open(course, now=now)

        enrolled, reserved = course.enrolled_count, course.reserved_count
        if enrolled < course.max_capacity:
            enrolled += 1
            result = RegistrationResult(course_id, RegistrationStatus.ENROLLED, None)
        elif reserved < course.reserve_limit:
            reserved += 1
            result = RegistrationResult(course_id, RegistrationStatus.RESERVED, reserved)
        else:
            # Full: an existing registration is the better answer to give.
            if _is_registered(session, student_id=student_id, course_id=course_id):
                raise AlreadyRegistered()
            raise CourseFull()

        try:
            counted = session.execute(
                _INSERT_REGISTRATION_AND_COUNT,
                {
                    "student": student_id,
                    "course": course_id,
                    "new_status": result.status,
                    "new_position": result.reserve_position,
                    "new_enrolled_count": enrolled,
                    "new_reserved_count": reserved,
                },
            )
        except IntegrityError as error:
            # A validly signed token whose student has since been deleted.
            if getattr(error.orig, "pgcode", None) == _FOREIGN_KEY_VIOLATION:
                raise InvalidToken("The student in this token no longer exists") from error
            raise
        if counted.rowcount == 0:
            raise AlreadyRegistered()
        if retry:
            idempotency.store_response(session, retry, body=result.response_body(), now=now, ttl=idempotency_ttl)
    return result


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
    retry = IdempotentRequest(student_id, idempotency_key, f"drop:{course_id}") if idempotency_key else None
    with session.begin():
        course = _lock_course(session, course_id=course_id)
        if retry and (stored := idempotency.find_stored_response(session, retry, now=now)):
            return DropResult.replay(stored)
        _ensure_registration_open(course, now=now)

        dropped = session.execute(_DELETE_REGISTRATION, {"student": student_id, "course": course_id}).one_or_none()
        if dropped is None:
            raise NotRegistered()

        enrolled, reserved = course.enrolled_count, course.reserved_count
        if dropped.status == RegistrationStatus.RESERVED:
            vacated_position, reserved = dropped.reserve_position, reserved - 1
        elif reserved > 0:
            # The freed seat goes to position 1: treat the seat as "position 0".
            vacated_position, reserved = 0, reserved - 1
        else:
            vacated_position, enrolled = None, enrolled - 1

        counters = {"course": course_id, "new_enrolled_count": enrolled, "new_reserved_count": reserved}
        if vacated_position is None:
            session.execute(_SET_COUNTERS, counters)
            promoted_student_id = None
        else:
            promoted_student_id = session.scalar(
                _SHIFT_RESERVE_LIST_AND_SET_COUNTERS, {**counters, "vacated_position": vacated_position}
            )

        result = DropResult(
            course_id=course_id,
            dropped_status=dropped.status,
            promoted_student_id=promoted_student_id,
            promoted_from_position=1 if promoted_student_id is not None else None,
        )
        if retry:
            idempotency.store_response(session, retry, body=result.response_body(), now=now, ttl=idempotency_ttl)
    return result


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
