from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import CourseNotFound
from app.core.pagination import Page, PageParams, paginate_scalars
from app.courses.models import Course
from app.semesters.service import ensure_semester_exists


def list_semester_courses(session: Session, *, semester_id: int, page: PageParams) -> Page[Course]:
    statement = select(Course).where(Course.semester_id == semester_id).order_by(Course.id)
    with session.begin():
        result = paginate_scalars(session, statement, page)
        if result.total == 0:
            # Only an empty answer needs the extra query: no courses, or no semester?
            ensure_semester_exists(session, semester_id=semester_id)
    return result


def get_course(session: Session, *, course_id: int) -> Course:
    with session.begin():
        course = session.get(Course, course_id)
    if course is None:
        raise CourseNotFound()
    return course
