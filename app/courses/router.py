from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.core.cache import TTLCache
from app.core.db import ReadEngineDep
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody
from app.courses import service
from app.courses.schemas import CourseRead

router = APIRouter(tags=["courses"])

_COURSE = JSONBody(CourseRead)
_COURSE_LIST = JSONBody(list[CourseRead])


async def get_catalogue_cache(request: Request) -> TTLCache:
    return request.app.state.catalogue_cache


CatalogueCacheDep = Annotated[TTLCache, Depends(get_catalogue_cache)]


@router.get("/semesters/{semester_id}/courses", response_model=list[CourseRead])
def list_semester_courses(
    semester_id: SemesterId, page: PageDep, engine: ReadEngineDep, cache: CatalogueCacheDep
) -> Response:
    """The semester's courses with their seat counts (at most `CATALOGUE_CACHE_SECONDS`
    old); the total is in `X-Total-Count`."""
    result = service.list_semester_courses(engine, cache, semester_id=semester_id, page=page)
    return _COURSE_LIST.response(result.items, headers=total_header(result))


@router.get("/courses/{course_id}", response_model=CourseRead)
def read_course(course_id: CourseId, engine: ReadEngineDep, cache: CatalogueCacheDep) -> Response:
    return _COURSE.response(service.get_course(engine, cache, course_id=course_id))
