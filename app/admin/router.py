"""The registrar's API under /admin: every route needs a registrar token.

The permission is taken once, here, for the whole router (never an `if` in a
handler): no token 401, a student token (or a staff token of another role) 403
FORBIDDEN. The routers included below inherit it, with the prefix and the tag.
Handlers that need the registrar (as the actor of a change) take
`CurrentRegistrar` or `RegistrarContext`; FastAPI runs the check once per request.
"""

from fastapi import APIRouter, Response

from app.admin import courses, semesters, students, waiting_rooms
from app.auth.dependencies import CurrentRegistrar, RequireRegistrar
from app.core.db import ReadEngineDep
from app.core.openapi import DATABASE, REGISTRAR, errors
from app.core.responses import JSONBody
from app.staff import service as staff_service
from app.staff.schemas import StaffRead

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[RequireRegistrar])

_STAFF = JSONBody(StaffRead)


@router.get("/whoami", response_model=StaffRead, responses=errors(REGISTRAR, DATABASE))
def read_current_registrar(registrar: CurrentRegistrar, engine: ReadEngineDep) -> Response:
    """The staff account the token names."""
    return _STAFF.response(staff_service.get_staff(engine, staff_id=registrar.staff_id))


for area in (semesters.router, courses.router, students.router, waiting_rooms.router):
    router.include_router(area)
