"""The waiting room's check on register, drop and swap, before the write gate.

`async def` on the event loop, answered from what the worker keeps
(app/waiting_room/state.py): a request that is not admitted costs no thread, no
connection and no place in the write gate. The registrar's writes on a student's
behalf are not subject to the room.
"""

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Header, Request

from app.core.security import StudentSubject
from app.waiting_room.errors import NotYetAdmitted
from app.waiting_room.rules import estimate
from app.waiting_room.state import WaitingRooms
from app.waiting_room.tokens import place_claims

ADMISSION_TOKEN_HEADER = "X-Admission-Token"

AdmissionToken = Annotated[
    str | None,
    Header(
        alias=ADMISSION_TOKEN_HEADER,
        min_length=1,
        max_length=2048,
        pattern=r"^[\x21-\x7e]+$",  # visible ASCII
        description="The admission token of POST /semesters/{id}/queue; needed while the semester's waiting "
        "room is on, and good once the place is admitted",
    ),
]

# What the check can answer.
ADMISSION = ("NOT_YET_ADMITTED", "INVALID_ADMISSION_TOKEN")


async def check_admission(
    request: Request, *, course_id: int, student: StudentSubject, admission_token: str | None
) -> None:
    """Through when the course's semester has no room on, or the token is this student's, in
    this semester, and its place is admitted. Otherwise 409 NOT_YET_ADMITTED (no token, or a
    place behind the frontier: with its estimate and Retry-After) or 403 INVALID_ADMISSION_TOKEN
    (forged, expired, another student's or semester's, or not an admission token at all).

    A coroutine, not a dependency of its own: the registration routes call it from their one
    admission dependency (app/registrations/router.py), as each dependency FastAPI solves
    costs the request about 20 us."""
    rooms: WaitingRooms = request.app.state.waiting_rooms
    semester_id = await rooms.semester_of(course_id)
    if semester_id is None:
        return  # no such course: the service answers 404
    room = await rooms.room(semester_id)
    if room is None or not room.on:
        return
    if admission_token is None:
        raise NotYetAdmitted()
    settings = request.app.state.settings
    claims = place_claims(
        admission_token, student_id=student.student_id, semester_id=semester_id, secret_key=settings.secret_key
    )
    if room.admits(claims.ticket):
        return
    guess = estimate(
        ticket=claims.ticket,
        room=room,
        now=datetime.now(UTC),
        monotonic_now=time.monotonic(),
        fallback_rate_per_s=settings.waiting_room_initial_rate_per_s,
    )
    raise NotYetAdmitted(
        position=guess.position, estimated_admission_at=guess.estimated_admission_at, retry_after=guess.retry_after or 1
    )
