from fastapi import APIRouter, Response

from app.core.db import SessionDep
from app.core.pagination import PageDep, set_total_header
from app.core.params import CourseId, SemesterId
from app.courses import service
from app.courses.schemas import CourseRead

router = APIRouter(tags=["courses"])


@router.get("/semesters/{semester_id}/courses", response_model=list[CourseRead])
def list_semester_courses(
    semester_id: SemesterId, page: PageDep, session: SessionDep, response: Response
) -> list[CourseRead]:
    """The semester's courses with live seat counts; the total is in `X-Total-Count`."""
    result = service.list_semester_courses(session, semester_id=semester_id, page=page)
    set_total_header(response, result)
    return [CourseRead.model_validate(course) for course in result.items]


@router.get("/courses/{course_id}", response_model=CourseRead)
def read_course(course_id: CourseId, session: SessionDep) -> CourseRead:
    return CourseRead.model_validate(service.get_course(session, course_id=course_id))
