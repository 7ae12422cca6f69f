from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import CourseNotFound
from app.courses.models import Course
from app.semesters.service import ensure_semester_exists


def list_semester_courses(session: Session, *, semester_id: int) -> Sequence[Course]:
    ensure_semester_exists(session, semester_id=semester_id)
    return session.scalars(
        select(Course).where(Course.semester_id == semester_id).order_by(Course.id)
    ).all()


def get_course(session: Session, *, course_id: int) -> Course:
    course = session.get(Course, course_id)
    if course is None:
        raise CourseNotFound()
    return course
