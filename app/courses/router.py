"""The catalogue. Its answers are the most read of the registration rush, so each
rendered answer is kept for CATALOGUE_CACHE_SECONDS per worker (app/core/cache.py):
a page costs the database one query per worker per period, however many students
refresh it, and the seat counts shown lag by at most that long. Registering
always decides on the locked course row."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.core.cache import TTLCache
from app.core.db import ReadEngineDep
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody, RenderedJSON
from app.courses import service
from app.courses.schemas import CourseRead

router = APIRouter(tags=["courses"])

_COURSE = JSONBody(CourseRead)
_COURSE_LIST = JSONBody(list[CourseRead])


async def get_catalogue_cache(request: Request) -> TTLCache[RenderedJSON]:
    return request.app.state.catalogue_cache


CatalogueCacheDep = Annotated[TTLCache[RenderedJSON], Depends(get_catalogue_cache)]


@router.get("/semesters/{semester_id}/courses", response_model=list[CourseRead])
def list_semester_courses(
    semester_id: SemesterId, page: PageDep, engine: ReadEngineDep, cache: CatalogueCacheDep
) -> Response:
    """The semester's courses with their seat counts (at most `CATALOGUE_CACHE_SECONDS`
    old); the total is in `X-Total-Count`."""

    def read() -> RenderedJSON:
        result = service.list_semester_courses(engine, semester_id=semester_id, page=page)
        return _COURSE_LIST.render(result.items, headers=total_header(result))

    return cache.get(("semester courses", semester_id, page), read).response()


@router.get("/courses/{course_id}", response_model=CourseRead)
def read_course(course_id: CourseId, engine: ReadEngineDep, cache: CatalogueCacheDep) -> Response:
    """One course with its seat counts (at most `CATALOGUE_CACHE_SECONDS` old)."""

    def read() -> RenderedJSON:
        return _COURSE.render(service.get_course(engine, course_id=course_id))

    return cache.get(("course", course_id), read).response()
