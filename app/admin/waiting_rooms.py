"""/admin/semesters/{id}/waiting-room: the registrar's switch and pace for a semester's room."""

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from app.core.db import ReadEngineDep, SessionDep
from app.core.openapi import BODY, DATABASE, INPUT, REGISTRAR, WRITE, errors
from app.core.params import SemesterId
from app.waiting_room import service
from app.waiting_room.schemas import WaitingRoomRead, WaitingRoomUpdate

router = APIRouter()


@router.get(
    "/semesters/{semester_id}/waiting-room",
    response_model=WaitingRoomRead,
    responses=errors(REGISTRAR, INPUT, DATABASE, ("SEMESTER_NOT_FOUND",)),
)
def read_waiting_room(semester_id: SemesterId, engine: ReadEngineDep, request: Request) -> object:
    """The room's switch, whether it is on now, its pace, its frontier, places given and waiting."""
    return service.room_status(
        engine, semester_id=semester_id, now=datetime.now(UTC), settings=request.app.state.settings
    )


@router.put(
    "/semesters/{semester_id}/waiting-room",
    response_model=WaitingRoomRead,
    responses=errors(REGISTRAR, BODY, WRITE, ("SEMESTER_NOT_FOUND",)),
)
def set_waiting_room(semester_id: SemesterId, body: WaitingRoomUpdate, session: SessionDep, request: Request) -> object:
    """Switch the room on (`enabled: true`) or off (`false`), or back to the default (`null`: on
    for the window's first WAITING_ROOM_DEFAULT_MINUTES), and set its pace (`rate_per_s`
    students a second; `null`: adaptive). Places keep their order; every worker follows within
    WAITING_ROOM_TICK_SECONDS."""
    room = service.set_room(
        session,
        semester_id=semester_id,
        enabled=body.enabled,
        fixed_rate_per_s=body.rate_per_s,
        now=datetime.now(UTC),
        settings=request.app.state.settings,
    )
    request.app.state.waiting_rooms.forget(semester_id)
    return room
