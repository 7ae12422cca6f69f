"""Reading the catalogue: single statements on the read engine (autocommit)."""

from sqlalchemy import Engine, RowMapping, bindparam, select

from app.core.pagination import Page, PagedQuery, PageParams
from app.courses.errors import CourseNotFound
from app.courses.models import Course
from app.semesters.service import ensure_semester_exists

# Exactly the fields of CourseRead, so rows validate straight into it.
_COURSE_FIELDS = select(
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
