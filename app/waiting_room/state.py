"""What one worker knows of the waiting rooms, kept for a fraction of a second.

An admission check runs on the event loop and costs no query on the hot path: a
course's semester never changes (kept for the worker's life), and a room's state
(on or off, its frontier, its pace) is kept for WAITING_ROOM_TICK_SECONDS. The
first request after that reads it again in the threadpool, moving the frontier on
the way if it is due (app/waiting_room/service.py::load_room); requests arriving
meanwhile wait for that one read instead of each making their own.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.core.admission import GatePressure
from app.core.config import Settings
from app.waiting_room import service
from app.waiting_room.rules import RoomState, pace_step

# Unknown semester ids are remembered too (briefly): past this many entries, stale ones go.
_MAX_ROOMS = 1024

logger = logging.getLogger(__name__)


class WaitingRooms:
    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        pressure: Callable[[], GatePressure],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._pressure = pressure
        self._settings = settings
        self._clock = clock
        self._ttl = settings.waiting_room_tick_seconds
        self._rooms: dict[int, tuple[float, RoomState | None]] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._course_semesters: dict[int, int] = {}

    async def room(self, semester_id: int) -> RoomState | None:
        """The semester's room, at most a tick old; None when there is no such semester."""
        cached = self._fresh(semester_id)
        if cached is not None:
            return cached[1]
        lock = self._loading.setdefault(semester_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(semester_id)  # read by the request this one waited for
            if cached is not None:
                return cached[1]
            pressure = self._pressure()
            state = await run_in_threadpool(
                service.load_room,
                self._engine,
                semester_id=semester_id,
                now=datetime.now(UTC),
                settings=self._settings,
                pace_step=pace_step(pressure),
            )
            if state is not None and state.pace_cut_from is not None:
                _log_cut(state, pressure)
            self._remember(semester_id, state)
        return state

    async def semester_of(self, course_id: int) -> int | None:
        """The course's semester (None: no such course, not remembered)."""
        semester_id = self._course_semesters.get(course_id)
        if semester_id is None:
            semester_id = await run_in_threadpool(service.course_semester, self._engine, course_id=course_id)
            if semester_id is not None:
                self._course_semesters[course_id] = semester_id
        return semester_id

    def forget(self, semester_id: int) -> None:
        """Read the room again on its next use (this worker changed it)."""
        self._rooms.pop(semester_id, None)

    def _fresh(self, semester_id: int) -> tuple[float, RoomState | None] | None:
        cached = self._rooms.get(semester_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached
        return None

    def _remember(self, semester_id: int, state: RoomState | None) -> None:
        now = self._clock()
        if len(self._rooms) >= _MAX_ROOMS:
            self._rooms = {key: value for key, value in self._rooms.items() if now - value[0] < self._ttl}
            self._loading = {key: lock for key, lock in self._loading.items() if lock.locked()}
        self._rooms[semester_id] = (now, state)


def _log_cut(room: RoomState, pressure: GatePressure) -> None:
    """One line from the worker that cut a room's adaptive pace, with the pressure it cut
    on: the operator's answer to "why did the room slow down"."""
    logger.info(
        "waiting room of semester %d: pace cut from %.1f to %.1f students/s (requests queued %.0f ms on average,"
        " the oldest %.0f ms; event loop %.0f ms late; %d of %d refused; connections waiting %.0f ms,"
        " places %.0f ms)",
        room.semester_id,
        room.pace_cut_from,
        room.rate_per_s,
        1000 * pressure.mean_wait_s,
        1000 * pressure.oldest_wait_s,
        1000 * pressure.loop_lag_s,
        pressure.refused,
        pressure.admitted + pressure.refused,
        1000 * pressure.accept_wait_s,
        1000 * pressure.place_wait_s,
    )
