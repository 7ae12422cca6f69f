"""The catalogue. Its answers are the most read of the registration rush, so each
answer is kept for CATALOGUE_CACHE_SECONDS per worker, in front of the endpoint
(`CachedRoute`, app/core/cache.py): a page costs the database one query per
worker per period, however many students refresh it, and the seat counts shown
lag by at most that long. Registering always decides on the locked course row."""

from fastapi import APIRouter, Response

from app.core.cache import CachedRoute
from app.core.db import CatalogueEngineDep
from app.core.openapi import DATABASE, INPUT, TOTAL_COUNT_HEADER_DOC, errors, ok
from app.core.pagination import PageDep, total_header
from app.core.params import CourseId, SemesterId
from app.core.responses import JSONBody
from app.courses import service
from app.courses.schemas import CourseRead

router = APIRouter(tags=["courses"], route_class=CachedRoute)

_COURSE = JSONBody(CourseRead)
_COURSE_LIST = JSONBody(list[CourseRead])


@router.get(
    "/semesters/{semester_id}/courses",
    response_model=list[CourseRead],
    responses={**ok(total=TOTAL_COUNT_HEADER_DOC), **errors(INPUT, DATABASE, ("SEMESTER_NOT_FOUND",))},
)
def list_semester_courses(semester_id: SemesterId, page: PageDep, engine: CatalogueEngineDep) -> Response:
    """The semester's courses with their seat counts (at most `CATALOGUE_CACHE_SECONDS`
    old); the total is in `X-Total-Count`."""
    result = service.list_semester_courses(engine, semester_id=semester_id, page=page)
    return _COURSE_LIST.response(result.items, headers=total_header(result))


@router.get("/courses/{course_id}", response_model=CourseRead, responses=errors(INPUT, DATABASE, ("COURSE_NOT_FOUND",)))
def read_course(course_id: CourseId, engine: CatalogueEngineDep) -> Response:
    """One course with its seat counts (at most `CATALOGUE_CACHE_SECONDS` old)."""
    return _COURSE.response(service.get_course(engine, course_id=course_id))
