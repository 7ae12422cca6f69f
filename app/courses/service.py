"""The catalogue: reading it (single statements on the read engine, autocommit) and a
registrar's changes to it (one short transaction each, locking at most the course)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, RowMapping, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import UNIQUE_VIOLATION
from app.core.pagination import Page, PagedQuery, PageParams
from app.courses.errors import CourseHasRegistrations, CourseNotFound, CourseTaken
from app.courses.models import Course
from app.registrations import service as registrations
from app.registrations.rules import schedule_text
from app.semesters.service import ensure_semester_exists

# Exactly the fields of CourseRead, so rows validate straight into it.
_COURSE_COLUMNS = (
    Course.id,
    Course.semester_id,
    Course.course_name,
    Course.professor,
    Course.schedule,
    Course.max_capacity,
    Course.reserve_limit,
    Course.enrolled_count,
    Course.reserved_count,
    Course.available_seats.label("available_seats"),
    Course.code,
    Course.credits,
    Course.meetings,
    Course.prerequisites,
    Course.cancelled_at.is_not(None).label("is_cancelled"),
)
_COURSE_FIELDS = select(*_COURSE_COLUMNS)
_SEMESTER_COURSES = PagedQuery(_COURSE_FIELDS.where(Course.semester_id == bindparam("semester")).order_by(Course.id))
_COURSE = _COURSE_FIELDS.where(Course.id == bindparam("course"))


def list_semester_courses(engine: Engine, *, semester_id: int, page: PageParams) -> Page[RowMapping]:
    with engine.connect() as connection:
        result = _SEMESTER_COURSES.fetch(connection, page, semester=semester_id)
        if result.total == 0:
            # Only an empty answer needs the extra query: no courses, or no semester?
            ensure_semester_exists(connection, semester_id=semester_id)
    return result


def get_course(engine: Engine, *, course_id: int) -> RowMapping:
    with engine.connect() as connection:
        course = connection.execute(_COURSE, {"course": course_id}).mappings().one_or_none()
    if course is None:
        raise CourseNotFound()
    return course


# ---- a registrar's changes ------------------------------------------------------------------------

# What registering judged a registered student on: these change only while nobody is registered.
RULE_FIELDS = ("credits", "meetings", "prerequisites")
CAPACITY_FIELDS = ("max_capacity", "reserve_limit")


def _raise_taken(error: IntegrityError) -> None:
    if getattr(error.orig, "pgcode", None) == UNIQUE_VIOLATION:
        raise CourseTaken() from error


def create_course(session: Session, *, semester_id: int, values: Mapping[str, Any]) -> RowMapping:
    """A new course (CourseRead); `schedule` is derived from the meetings when there are any.
    CourseTaken when its code or name is taken in the semester (the insert decides)."""
    values = {**values, "schedule": schedule_text(values["meetings"]) or values.get("schedule") or ""}
    with session.begin():
        ensure_semester_exists(session.connection(), semester_id=semester_id)
        row = (
            session.execute(
                insert(Course)
                .values(semester_id=semester_id, **values)
                .on_conflict_do_nothing()
                .returning(*_COURSE_COLUMNS)
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise CourseTaken()
    return row


@dataclass(frozen=True, slots=True)
class CourseNow:
    """What an edit is judged against: the locked course's values."""

    registered: bool  # anybody ENROLLED or RESERVED
    credits: int
    meetings: Sequence[Mapping[str, str]]
    prerequisites: Sequence[str]
    max_capacity: int
    reserve_limit: int


def plan_course_edit(course: CourseNow, changes: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The columns to set, and whether the limits change (that goes through
    `registrations.apply_capacity_change`). A change of credits, meetings or
    prerequisites while anybody is registered is refused: their credits and time
    slots were judged on the old values. Sending a value equal to the old one is no change."""
    changed_rules = [
        field
        for field in RULE_FIELDS
        if field in changes and _normalised(field, changes[field]) != _normalised(field, getattr(course, field))
    ]
    if changed_rules and course.registered:
        raise CourseHasRegistrations(f"{CourseHasRegistrations.detail}: {', '.join(changed_rules)}")
    columns = {field: value for field, value in changes.items() if field not in CAPACITY_FIELDS}
    if "meetings" in changes or "schedule" in changes:
        meetings = changes.get("meetings", course.meetings)
        columns["schedule"] = schedule_text(meetings) or changes.get("schedule") or ""
    limits_change = any(field in changes and changes[field] != getattr(course, field) for field in CAPACITY_FIELDS)
    return columns, limits_change


def _normalised(field: str, value: Any) -> Any:
    return sorted(value) if field == "prerequisites" else value


_LOCK_FOR_EDIT = (
    select(
        (Course.enrolled_count + Course.reserved_count > 0).label("registered"),
        Course.credits,
        Course.meetings,
        Course.prerequisites,
        Course.max_capacity,
        Course.reserve_limit,
    )
    .where(Course.id == bindparam("course"))
    .with_for_update()  # the course row only
)


def update_course(
    session: Session, *, course_id: int, changes: Mapping[str, Any], context: registrations.WriteContext
) -> RowMapping:
    """Any of the course's fields, in one transaction under the course's lock (its only
    lock: a capacity raise promotes without locking the promoted). Returns CourseRead."""
    try:
        with session.begin():
            row = session.execute(_LOCK_FOR_EDIT, {"course": course_id}).one_or_none()
            if row is None:
                raise CourseNotFound()
            columns, limits_change = plan_course_edit(CourseNow(**row._mapping), changes)
            if columns:
                session.execute(update(Course).where(Course.id == course_id).values(**columns, updated_at=func.now()))
            if limits_change:
                registrations.apply_capacity_change(
                    session,
                    course_id=course_id,
                    max_capacity=changes.get("max_capacity"),
                    reserve_limit=changes.get("reserve_limit"),
                    context=context,
                )
            course: RowMapping = session.execute(_COURSE, {"course": course_id}).mappings().one()
    except IntegrityError as error:
        _raise_taken(error)
        raise
    return course
