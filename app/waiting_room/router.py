"""A student's place in a semester's waiting room (README, "The waiting room")."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.dependencies import ClaimedStudent
from app.core.db import ReadEngineDep
from app.core.openapi import AUTHENTICATED, DATABASE, INPUT, RETRY_AFTER_HEADER_DOC, errors, ok
from app.core.params import SemesterId
from app.core.responses import JSONBody
from app.semesters.errors import SemesterNotFound
from app.waiting_room import service
from app.waiting_room.dependencies import AdmissionToken
from app.waiting_room.rules import RoomState
from app.waiting_room.schemas import QueuePlaceRead
from app.waiting_room.state import WaitingRooms

router = APIRouter(tags=["waiting room"])

_PLACE = JSONBody(QueuePlaceRead)
_RETRY_AFTER_DOC = {
    "Retry-After": {
        **RETRY_AFTER_HEADER_DOC["Retry-After"],
        "description": "Not admitted yet: seconds to wait before asking again",
    }
}


async def current_room(request: Request, semester_id: SemesterId) -> RoomState:
    """The semester's room as this worker knows it (at most WAITING_ROOM_TICK_SECONDS old)."""
    rooms: WaitingRooms = request.app.state.waiting_rooms
    room = await rooms.room(semester_id)
    if room is None:
        raise SemesterNotFound()
    return room


CurrentRoom = Annotated[RoomState, Depends(current_room)]


def _headers(place: service.QueuePlace) -> dict[str, str]:
    return {"Retry-After": str(place.retry_after)} if place.retry_after is not None else {}


async def place_in_room(student: ClaimedStudent, room: CurrentRoom, request: Request) -> service.QueuePlace:
    """The student's place, taken on the event loop: a place waits for its batch
    (app/waiting_room/places.py) without holding a thread, so the crowd at the door
    costs the threadpool one short trip per place (the answer) and one per batch."""
    place = await service.take_place(
        request.app.state.places,
        student_id=student.student_id,
        room=room,
        now=datetime.now(UTC),
        settings=request.app.state.settings,
    )
    student.confirm()
    return place


@router.post(
    "/semesters/{semester_id}/queue",
    response_model=QueuePlaceRead,
    responses={
        **ok(retry_after=_RETRY_AFTER_DOC),
        **errors(
            AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND", "REGISTRATION_CLOSED", "REFERENCED_ROW_NOT_FOUND")
        ),
    },
)
def join_waiting_room(place: Annotated[service.QueuePlace, Depends(place_in_room)]) -> Response:
    """My place in the semester's waiting room: issued on the first call, the same on every
    later one (retrying, reconnecting or refreshing never loses it). Answers at once with the
    position, the estimated admission time and the admission token; with `Retry-After` while
    not admitted. With the room off, the place is admitted at once. Only while registration
    is open (409 REGISTRATION_CLOSED)."""
    return _PLACE.response(place, headers=_headers(place))


async def admit_estimate(request: Request, admission_token: AdmissionToken = None) -> AsyncIterator[None]:
    """The read gate, unless the estimate is answered from the admission token (no query, no
    connection to guard): a waiting crowd's estimates never queue behind the reads."""
    if admission_token is not None:
        yield
        return
    async with request.app.state.read_gate.admit():
        yield


@router.get(
    "/semesters/{semester_id}/queue/me",
    dependencies=[Depends(admit_estimate)],
    response_model=QueuePlaceRead,
    responses={
        **ok(retry_after=_RETRY_AFTER_DOC),
        **errors(AUTHENTICATED, INPUT, DATABASE, ("SEMESTER_NOT_FOUND", "NO_QUEUE_PLACE", "INVALID_ADMISSION_TOKEN")),
    },
)
def read_my_place(
    semester_id: SemesterId,
    student: ClaimedStudent,
    room: CurrentRoom,
    engine: ReadEngineDep,
    request: Request,
    admission_token: AdmissionToken = None,
) -> Response:
    """The current estimate for my place (404 NO_QUEUE_PLACE when I never asked for one).
    With my admission token in `X-Admission-Token`, as a waiting client has it, answered from
    the token's place and the room's state, without a query (403 INVALID_ADMISSION_TOKEN when
    it is not my place in this semester)."""
    settings = request.app.state.settings
    if admission_token is not None:
        place = service.place_of_token(
            admission_token, student_id=student.student_id, room=room, now=datetime.now(UTC), settings=settings
        )
    else:
        place = service.find_place(
            engine, student_id=student.student_id, room=room, now=datetime.now(UTC), settings=settings
        )
        student.confirm()
    return _PLACE.response(place, headers=_headers(place))
