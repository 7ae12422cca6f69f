from fastapi import APIRouter, Response

from app.core.db import ReadEngineDep
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody
from app.courses import service
from app.courses.schemas import CourseRead

router = APIRouter(tags=["courses"])

_COURSE = JSONBody(CourseRead)
_COURSE_LIST = JSONBody(list[CourseRead])


@router.get("/semesters/{semester_id}/courses", response_model=list[CourseRead])
def list_semester_courses(semester_id: SemesterId, page: PageDep, engine: ReadEngineDep) -> Response:
    """The semester's courses with live seat counts; the total is in `X-Total-Count`."""
    result = service.list_semester_courses(engine, semester_id=semester_id, page=page)
    return _COURSE_LIST.response(result.items, headers=total_header(result))


@router.get("/courses/{course_id}", response_model=CourseRead)
def read_course(course_id: CourseId, engine: ReadEngineDep) -> Response:
    return _COURSE.response(service.get_course(engine, course_id=course_id))
