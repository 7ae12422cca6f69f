"""Registering, dropping, swapping and promoting: the only code that writes registrations.

A register or swap without an Idempotency-Key, for a course this process last
saw full, is first judged on one read with no lock (`_refuse_before_locking`):
on registration day most requests are for full courses, and a refusal writes
nothing, so it is answered from that read (one autocommit statement: no BEGIN,
no lock, no ROLLBACK). What it lets through is decided again under the locks,
which alone write. Every write is one short transaction with one shape
(`_student_write`):

1. lock the student's row (`SELECT ... FOR NO KEY UPDATE`): the student's
   registrations, credits, holds and appointments cannot change meanwhile;
2. replay the stored answer of a retried Idempotency-Key (keys are per student);
3. read the student's standing and the course's rules in one statement, and
   decide rules 1-7 with pure functions (app/registrations/rules.py): a refusal
   never touches the course lock;
4. lock the course rows it decides on, by ascending id (`FOR UPDATE OF courses`,
   never the semester), decide the seats from the counters kept on them, and
   write the change with its audit event in one statement;
5. store the answer for retries; commit.

Lock order everywhere (student and registrar paths alike): the student, then
courses by ascending id. A promotion never locks the promoted student: a
reserve place already holds its credits and its time slot, so moving up breaks
no rule of theirs. The counters on `courses` and `student_terms` make every
decision O(1) in the size of the course.
"""

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import Field
from sqlalchemy import Connection, DateTime, Engine, Row, RowMapping, Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from app.auth.errors import InvalidToken
from app.core.pagination import Page, PagedQuery, PageParams
from app.courses.errors import CourseNotFound
from app.courses.models import Course
from app.idempotency import service as idempotency
from app.idempotency.service import IdempotentRequest
from app.registrations import statements
from app.registrations.errors import CourseCancelled, CourseFull, NotRegistered, SwapNeedsSeat, SwapSameCourse
from app.registrations.models import CourseRegistration, RegistrationEvent, RegistrationStatus
from app.registrations.rules import (
    CourseRules,
    Placement,
    Registered,
    Resize,
    SeatCounters,
    StudentStanding,
    check_student_rules,
    ensure_window_open,
    parse_meetings,
    place_registration,
    resize,
    vacate,
)
from app.registrations.schemas import DropRead, RegistrationRead, SwapRead
from app.semesters.errors import SemesterNotFound
from app.semesters.service import ensure_semester_exists
from app.students.models import Student

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)
DEFAULT_MAX_CREDITS = 18


class RegistrationResult(RegistrationRead):
    """The answer to a register, as the client sees it."""

    # True when an Idempotency-Key retry got the stored first answer; never in the body.
    replayed: bool = Field(default=False, exclude=True)


class DropResult(DropRead):
    """The answer to a drop, as the client sees it."""

    replayed: bool = Field(default=False, exclude=True)


class SwapResult(SwapRead):
    """The answer to a swap, as the client sees it."""

    replayed: bool = Field(default=False, exclude=True)


@dataclass(frozen=True, slots=True)
class WriteContext:
    """Who asks, when, and how a retry is recognised: the same for every write."""

    now: datetime
    actor: str
    request_id: str | None = None
    idempotency_key: str | None = None
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL
    default_max_credits: int = DEFAULT_MAX_CREDITS


_Answer = TypeVar("_Answer", RegistrationResult, DropResult, SwapResult)
LockedCourse = Row[Any]


def _student_write(
    session: Session,
    *,
    student_id: uuid.UUID,
    fingerprint: str,
    context: WriteContext,
    answer_type: type[_Answer],
    decide_and_write: Callable[[], _Answer],
) -> _Answer:
    """The skeleton of every registration write (the module's docstring, steps 1, 2 and 5);
    `decide_and_write` does steps 3 and 4. Any error rolls everything back: nothing
    is stored or recorded for a refusal."""
    key = context.idempotency_key
    retry = IdempotentRequest(student_id, key, fingerprint) if key else None
    with session.begin():
        if session.execute(statements.LOCK_STUDENT, {"student": student_id}).first() is None:
            raise InvalidToken("The student in this token no longer exists")
        if retry and (stored := idempotency.find_stored_response(session, retry, now=context.now)):
            return answer_type.model_validate({**stored, "replayed": True})
        answer = decide_and_write()
        if retry:
            body = answer.model_dump(mode="json")
            idempotency.store_response(session, retry, body=body, now=context.now, ttl=context.idempotency_ttl)
    return answer


@dataclass(frozen=True, slots=True)
class Standing:
    """What a registration is judged on: the course's rules, the student's standing in its
    semester, the semester's id, and the course's seats as they were a moment ago (read
    without the course lock)."""

    course: CourseRules
    student: StudentStanding
    semester_id: int
    seats: SeatCounters


def _read_standing(
    executor: Session | Connection, *, student_id: uuid.UUID, course_id: int, context: WriteContext
) -> Standing | None:
    """One statement; None when the course (or the student) does not exist."""
    row = executor.execute(
        statements.STANDING_PREPARED if _prepared(executor) else statements.STANDING,
        {"student": student_id, "course": course_id, "default_max_credits": context.default_max_credits},
    ).one_or_none()
    if row is None:
        return None
    course = CourseRules(
        course_id=row.course_id,
        code=row.code,
        credits=row.credits,
        meetings=parse_meetings(row.meetings),
        prerequisites=tuple(row.prerequisites),
        registration_start=row.registration_start,
        registration_end=row.registration_end,
        cancelled=row.cancelled,
    )
    standing = StudentStanding(
        max_credits=row.max_credits,
        credits=row.term_credits,
        opens_at=row.registration_opens_at,
        hold_reasons=tuple(row.hold_reasons),
        completed=frozenset(row.completed),
        registered=tuple(
            Registered(r["course_id"], r["credits"], parse_meetings(r["meetings"])) for r in row.registered
        ),
    )
    seats = SeatCounters(row.max_capacity, row.reserve_limit, row.enrolled_count, row.reserved_count)
    return Standing(course, standing, row.semester_id, seats)


def _standing(session: Session, *, student_id: uuid.UUID, course_id: int, context: WriteContext) -> Standing:
    """The standing, read under the student's lock."""
    standing = _read_standing(session, student_id=student_id, course_id=course_id, context=context)
    if standing is None:
        raise CourseNotFound()
    return standing


# Courses this process last saw full (seats and reserve list). A hint only: it picks
# which requests are judged before the locks too, and both ways decide the same. A
# course's mark goes when a read finds room in it again. Sets of ints are safe to
# share between threads here (one add or discard at a time, under the GIL).
_courses_seen_full: set[int] = set()


def _place(seats: SeatCounters, *, course_id: int) -> Placement:
    """`rules.place_registration`, remembering a course found full."""
    try:
        return place_registration(seats)
    except CourseFull:
        _courses_seen_full.add(course_id)
        raise


def _judge(standing: Standing, *, now: datetime, drop_course_id: int | None = None) -> None:
    """Every refusal of a register (or of a swap's new course), in order: the rules, then
    the seats as read a moment ago.

    A course that was full a moment ago is refused without waiting for its lock. A
    refusal writes nothing, so answering it from counters read a moment ago is
    correct: the course was full at that moment, as it would have been for a request
    that came then. Only a request that may get a place waits for the course lock
    (which decides again, on the live counters).
    """
    student = standing.student
    if drop_course_id is not None:
        if not any(r.course_id == drop_course_id for r in student.registered):
            raise NotRegistered()  # not in the old course (or it is in another semester)
        student = student.without(drop_course_id)  # judged as if no longer in the old course
    check_student_rules(standing.course, student, now=now)
    placement = _place(standing.seats, course_id=standing.course.course_id)  # CourseFull past both
    if drop_course_id is not None and placement.status != RegistrationStatus.ENROLLED:
        raise SwapNeedsSeat()


def _refuse_before_locking(
    session: Session,
    *,
    student_id: uuid.UUID,
    course_id: int,
    context: WriteContext,
    drop_course_id: int | None = None,
) -> None:
    """For a course this process last saw full: raise the refusal the request would get,
    judged on one read without any lock.

    The read is a single autocommit statement, so it sees one consistent snapshot,
    taken while the request is in progress: a refusal decided on it is what the
    request would have got at that moment, and writes nothing. It costs one round
    trip instead of four (BEGIN, the student's lock, the read, ROLLBACK) and never
    queues behind the student's other writes. A request that passes pays the read
    on top of the locked path's, which is why only full courses' requests take it.
    A request with an Idempotency-Key skips it: a retry's stored answer comes
    before any refusal, and is read under the student's lock. An unknown course or
    student passes, for the locked path to name it.
    """
    if context.idempotency_key is not None or course_id not in _courses_seen_full:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        standing = _read_standing(connection, student_id=student_id, course_id=course_id, context=context)
    if standing is not None:
        _judge(standing, now=context.now, drop_course_id=drop_course_id)
    _courses_seen_full.discard(course_id)  # room again (or no such course): the locks decide


def _prepared(executor: Session | Connection) -> bool:
    """Whether the connection has the hot statements prepared (DB_PREPARED_STATEMENTS)."""
    connection = executor.connection() if isinstance(executor, Session) else executor
    return bool(connection.info.get(statements.PREPARED_KEY))


def _lock_courses(session: Session, course_ids: list[int]) -> dict[int, LockedCourse]:
    """Lock the course rows, by ascending id (the lock order); CourseNotFound if one is missing."""
    locked = {}
    for course_id in sorted(course_ids):
        row = session.execute(statements.LOCK_COURSE, {"course": course_id}).one_or_none()
        if row is None:
            raise CourseNotFound()
        locked[course_id] = row
    return locked


def _seat_counters(course: LockedCourse) -> SeatCounters:
    return SeatCounters(course.max_capacity, course.reserve_limit, course.enrolled_count, course.reserved_count)


def _details(**values: Any) -> str:
    return json.dumps(values, default=str)


def _insert_registration(
    session: Session,
    *,
    student_id: uuid.UUID,
    course: CourseRules,
    semester_id: int,
    standing: StudentStanding,
    locked: LockedCourse,
    context: WriteContext,
    seat_required: bool = False,
) -> RegistrationResult:
    """Rule 8, under the course lock: a seat, else the tail of the reserve list, else COURSE_FULL."""
    if locked.cancelled:  # cancelled since the rules were read
        raise CourseCancelled()
    current = replace(
        course,
        credits=locked.credits,
        meetings=parse_meetings(locked.meetings),
        prerequisites=tuple(locked.prerequisites),
    )
    if current != course:
        # A registrar (or an import) changed the course's rules between the read and
        # the lock (only possible while nobody is registered): judge them again.
        check_student_rules(current, standing, now=context.now)
        course = current
    placement = _place(_seat_counters(locked), course_id=course.course_id)
    if seat_required and placement.status != RegistrationStatus.ENROLLED:
        raise SwapNeedsSeat()
    inserted = session.execute(
        statements.REGISTER_PREPARED if _prepared(session) else statements.REGISTER,
        {
            "student": student_id,
            "course": course.course_id,
            "semester": semester_id,
            "new_status": placement.status.value,
            "new_position": placement.reserve_position,
            "course_credits": course.credits,
            "new_enrolled_count": placement.enrolled_count,
            "new_reserved_count": placement.reserved_count,
            "actor": context.actor,
            "request_id": context.request_id,
            "details": _details(
                credits=course.credits,
                credits_after=standing.credits + course.credits,
                max_credits=standing.max_credits,
            ),
        },
    ).scalar_one()
    if inserted == 0:  # the backstop: the rules read the student's registrations under their lock
        raise AssertionError("a registration appeared under the student's lock")
    return RegistrationResult(
        course_id=course.course_id, status=placement.status, reserve_position=placement.reserve_position
    )


def _remove_registration(
    session: Session,
    *,
    student_id: uuid.UUID,
    locked: LockedCourse,
    event_type: str,
    details: dict[str, Any],
    context: WriteContext,
) -> DropResult:
    """Delete the student's registration; the reserve list behind it moves up, and a freed
    seat goes to reserve position 1 at once, in the same statement."""
    dropped = session.execute(
        statements.DELETE_REGISTRATION, {"student": student_id, "course": locked.id}
    ).one_or_none()
    if dropped is None:
        raise NotRegistered()
    vacancy = vacate(_seat_counters(locked), dropped_status=dropped.status, dropped_position=dropped.reserve_position)
    promoted_student_id = session.execute(
        statements.VACATE,
        {
            "course": locked.id,
            "semester": locked.semester_id,
            "student": student_id,
            "vacated_position": vacancy.vacated_position,
            "new_enrolled_count": vacancy.enrolled_count,
            "new_reserved_count": vacancy.reserved_count,
            "freed_credits": dropped.credits,
            "event_type": event_type,
            "dropped_position": dropped.reserve_position,
            "actor": context.actor,
            "request_id": context.request_id,
            "details": _details(status=dropped.status, credits=dropped.credits, **details),
        },
    ).scalar_one_or_none()
    return DropResult(
        course_id=locked.id,
        dropped_status=dropped.status,
        promoted_student_id=promoted_student_id,
        promoted_from_position=1 if promoted_student_id is not None else None,
    )


def _own_context(
    student_id: uuid.UUID, now: datetime, idempotency_key: str | None, idempotency_ttl: timedelta
) -> WriteContext:
    """A student acting for themself."""
    return WriteContext(
        now=now, actor=f"student:{student_id}", idempotency_key=idempotency_key, idempotency_ttl=idempotency_ttl
    )


def register(
    session: Session,
    *,
    student_id: uuid.UUID,
    course_id: int,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
    context: WriteContext | None = None,
) -> RegistrationResult:
    """Every rule in order (app/registrations/rules.py), then a seat while seats are free,
    else the tail of the reserve list. `context` (who, when, retries) overrides the
    plain `now`/`idempotency_*` arguments, which suit a student acting for themself."""
    context = context or _own_context(student_id, now, idempotency_key, idempotency_ttl)

    def decide_and_write() -> RegistrationResult:
        standing = _standing(session, student_id=student_id, course_id=course_id, context=context)
        _judge(standing, now=context.now)
        locked = _lock_courses(session, [course_id])[course_id]
        return _insert_registration(
            session,
            student_id=student_id,
            course=standing.course,
            semester_id=standing.semester_id,
            standing=standing.student,
            locked=locked,
            context=context,
        )

    _refuse_before_locking(session, student_id=student_id, course_id=course_id, context=context)
    return _student_write(
        session,
        student_id=student_id,
        fingerprint=f"register:{course_id}",
        context=context,
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
    context: WriteContext | None = None,
) -> DropResult:
    """Remove the student's registration; the reserve list behind it moves up by one.

    Dropping an enrolled registration frees a seat, which reserve position 1 takes
    at once. Dropping a reserved one closes the gap it leaves in the list. Holds
    and appointments never block a drop.
    """
    context = context or _own_context(student_id, now, idempotency_key, idempotency_ttl)

    def decide_and_write() -> DropResult:
        locked = _lock_courses(session, [course_id])[course_id]
        ensure_window_open(
            registration_start=locked.registration_start, registration_end=locked.registration_end, now=context.now
        )
        return _remove_registration(
            session, student_id=student_id, locked=locked, event_type="DROPPED", details={}, context=context
        )

    return _student_write(
        session,
        student_id=student_id,
        fingerprint=f"drop:{course_id}",
        context=context,
        answer_type=DropResult,
        decide_and_write=decide_and_write,
    )


def swap(
    session: Session,
    *,
    student_id: uuid.UUID,
    course_id: int,
    drop_course_id: int,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
    context: WriteContext | None = None,
) -> SwapResult:
    """Trade `drop_course_id` for a seat in `course_id`, in one transaction: the new
    course is judged as if the student were not in the old one, and only a seat
    will do. Any refusal (a rule, a full course, only a reserve place) changes
    nothing: the student keeps the old course."""
    if course_id == drop_course_id:
        raise SwapSameCourse()
    context = context or _own_context(student_id, now, idempotency_key, idempotency_ttl)

    def decide_and_write() -> SwapResult:
        standing = _standing(session, student_id=student_id, course_id=course_id, context=context)
        _judge(standing, now=context.now, drop_course_id=drop_course_id)
        locked = _lock_courses(session, [course_id, drop_course_id])
        registered = _insert_registration(
            session,
            student_id=student_id,
            course=standing.course,
            semester_id=standing.semester_id,
            standing=standing.student.without(drop_course_id),
            locked=locked[course_id],
            context=context,
            seat_required=True,
        )
        dropped = _remove_registration(
            session,
            student_id=student_id,
            locked=locked[drop_course_id],
            event_type="SWAPPED",
            details={"to_course_id": course_id},
            context=context,
        )
        return SwapResult(
            course_id=course_id,
            status=registered.status,
            dropped_course_id=drop_course_id,
            promoted_student_id=dropped.promoted_student_id,
            promoted_from_position=dropped.promoted_from_position,
        )

    _refuse_before_locking(
        session, student_id=student_id, course_id=course_id, context=context, drop_course_id=drop_course_id
    )
    return _student_write(
        session,
        student_id=student_id,
        fingerprint=f"swap:{course_id}:{drop_course_id}",
        context=context,
        answer_type=SwapResult,
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


# ---- a registrar's changes to a course ------------------------------------------------------------


def change_capacity(
    session: Session,
    *,
    course_id: int,
    max_capacity: int | None,
    reserve_limit: int | None,
    context: WriteContext,
) -> Resize:
    """New limits for a course in the middle of the rush. A raise promotes reserve heads
    at once, first come first served, as many as the new seats allow, in the same
    transaction. Locks the course only: promotion needs no student's lock."""
    with session.begin():
        return apply_capacity_change(
            session, course_id=course_id, max_capacity=max_capacity, reserve_limit=reserve_limit, context=context
        )


def apply_capacity_change(
    session: Session,
    *,
    course_id: int,
    max_capacity: int | None,
    reserve_limit: int | None,
    context: WriteContext,
) -> Resize:
    """`change_capacity` inside a transaction the caller holds (a registrar's course
    edit changes other fields in the same one): locks the course, promotes, records."""
    locked = _lock_courses(session, [course_id])[course_id]
    seats = _seat_counters(locked)
    new_capacity = seats.max_capacity if max_capacity is None else max_capacity
    new_reserve_limit = seats.reserve_limit if reserve_limit is None else reserve_limit
    change = resize(seats, max_capacity=new_capacity, reserve_limit=new_reserve_limit)
    event = {"course": course_id, "semester": locked.semester_id, "actor": context.actor}
    event["request_id"] = context.request_id
    if change.promote:
        session.execute(statements.PROMOTE_HEADS, {**event, "promote": change.promote})
    session.execute(
        statements.SET_LIMITS,
        {
            **event,
            "new_max_capacity": new_capacity,
            "new_reserve_limit": new_reserve_limit,
            "new_enrolled_count": change.enrolled_count,
            "new_reserved_count": change.reserved_count,
            "details": _details(
                max_capacity=[seats.max_capacity, new_capacity],
                reserve_limit=[seats.reserve_limit, new_reserve_limit],
                promoted=change.promote,
            ),
        },
    )
    return change


def cancel_course(session: Session, *, course_id: int, context: WriteContext) -> int:
    """End every registration of the course (nobody is promoted) and refuse new ones.

    Two transactions: the first marks the course cancelled under its lock, so no
    registration can join it from then on; the second locks every registered
    student (ascending id) and then the course, as the lock order requires, and
    ends their registrations, each with its credits given back and its event.
    Calling it again finishes an interrupted cancel. Returns how many ended.
    """
    with session.begin():
        locked = _lock_courses(session, [course_id])[course_id]
        session.execute(statements.MARK_CANCELLED, {"course": course_id})
    with session.begin():
        students = list(session.scalars(statements.REGISTERED_STUDENTS, {"course": course_id}))
        if students:
            session.execute(statements.LOCK_STUDENTS, {"students": [str(student) for student in students]})
        _lock_courses(session, [course_id])
        ended: int = session.execute(
            statements.END_ALL_REGISTRATIONS,
            {
                "course": course_id,
                "semester": locked.semester_id,
                "actor": context.actor,
                "request_id": context.request_id,
            },
        ).scalar_one()
    return ended


_MY_STATUS = text(
    """
    SELECT s.id AS semester_id, COALESCE(t.credits, 0) AS credits,
           COALESCE(st.max_credits, :default_max_credits) AS max_credits,
           COALESCE(t.registration_opens_at, s.registration_start) AS registration_opens_at,
           :now >= COALESCE(t.registration_opens_at, s.registration_start) AND :now >= s.registration_start
               AND :now < s.registration_end
               AND NOT EXISTS (SELECT FROM student_holds h WHERE h.student_id = st.id AND h.lifted_at IS NULL)
               AS can_register_now
    FROM semesters s
    JOIN students st ON st.id = :student
    LEFT JOIN student_terms t ON t.student_id = st.id AND t.semester_id = s.id
    WHERE s.id = :semester
    """
).bindparams(bindparam("student", type_=Uuid()), bindparam("now", type_=DateTime(timezone=True)))


def my_status(
    engine: Engine, *, student_id: uuid.UUID, semester_id: int, now: datetime, default_max_credits: int
) -> RowMapping:
    """The student's credits, limit and appointment in a semester, in one statement on the read engine."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                _MY_STATUS,
                {
                    "student": student_id,
                    "semester": semester_id,
                    "now": now,
                    "default_max_credits": default_max_credits,
                },
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise SemesterNotFound()
    return row


# Shaped like EventRead: the student's own trail in a semester, newest first.
_MY_HISTORY = PagedQuery(
    select(
        RegistrationEvent.id,
        RegistrationEvent.occurred_at,
        RegistrationEvent.event_type,
        RegistrationEvent.course_id,
        RegistrationEvent.reserve_position,
        RegistrationEvent.actor,
        RegistrationEvent.details,
    )
    .where(RegistrationEvent.student_id == bindparam("student"), RegistrationEvent.semester_id == bindparam("semester"))
    .order_by(RegistrationEvent.id.desc())
)


def list_my_history(engine: Engine, *, student_id: uuid.UUID, semester_id: int, page: PageParams) -> Page[RowMapping]:
    with engine.connect() as connection:
        result = _MY_HISTORY.fetch(connection, page, semester=semester_id, student=student_id)
        if result.total == 0:
            ensure_semester_exists(connection, semester_id=semester_id)
    return result


# ---- a registrar's reads: the roster and the trail of a course -------------------------------------

_COURSE_EXISTS = select(Course.id).where(Course.id == bindparam("course"))


def ensure_course_exists(connection: Connection, *, course_id: int) -> None:
    if connection.scalar(_COURSE_EXISTS, {"course": course_id}) is None:
        raise CourseNotFound()


# Shaped like RosterEntry: the enrolled in the order they registered, then the reserve list in position order.
_ROSTER = (
    select(
        Student.student_number,
        Student.name,
        CourseRegistration.status,
        CourseRegistration.reserve_position,
        CourseRegistration.created_at.label("registered_at"),
    )
    .join(Student, Student.id == CourseRegistration.student_id)
    .where(CourseRegistration.course_id == bindparam("course"))
    .order_by(
        CourseRegistration.reserve_position.asc().nulls_first(),
        CourseRegistration.created_at,
        CourseRegistration.id,
    )
)


def course_roster(engine: Engine, *, course_id: int) -> Sequence[RowMapping]:
    """Everyone registered for the course, on the read engine: one statement (two for an empty course)."""
    with engine.connect() as connection:
        rows = connection.execute(_ROSTER, {"course": course_id}).mappings().all()
        if not rows:
            ensure_course_exists(connection, course_id=course_id)
    return rows


# Shaped like AdminEventRead, newest first.
ADMIN_EVENT_COLUMNS = (
    RegistrationEvent.id,
    RegistrationEvent.occurred_at,
    RegistrationEvent.event_type,
    RegistrationEvent.course_id,
    RegistrationEvent.reserve_position,
    RegistrationEvent.actor,
    RegistrationEvent.details,
    RegistrationEvent.student_id,
    RegistrationEvent.semester_id,
    RegistrationEvent.request_id,
)
_COURSE_EVENTS = PagedQuery(
    select(*ADMIN_EVENT_COLUMNS)
    .where(RegistrationEvent.course_id == bindparam("course"))
    .order_by(RegistrationEvent.id.desc())
)


def list_course_events(engine: Engine, *, course_id: int, page: PageParams) -> Page[RowMapping]:
    """The course's trail, newest first, on the read engine."""
    with engine.connect() as connection:
        result = _COURSE_EVENTS.fetch(connection, page, course=course_id)
        if result.total == 0:
            ensure_course_exists(connection, course_id=course_id)
    return result
