"""A worker's waiting-room places, written in batches: one statement for every place
asked while the previous batch was being written (group commit).

At the opening a worker is asked for hundreds of places a second, each from a new
student. One statement per place cost a pool checkout, a round trip and a commit
(a WAL flush) each, and made every place wait for a read connection behind the
reads; measured with 1,000 places a second on two cores, PostgreSQL spent 0.45 ms
and the API 1.5 ms on each (docs/performance.md, "Places in batches").

The batches live on the worker's event loop: a place asked is appended to the next
batch and awaited, so it holds no thread while it waits. One writer task writes the
batches one after the other, each in one trip to the threadpool: what arrived during
the last batch's round trip goes into the next. A lone place waits for nobody.
Tickets are drawn in the order the places were asked, so the batch keeps the arrival
order that the room admits by.

At most MAX_WAITING places wait for their batch in a worker; past that, 503
SERVICE_BUSY (the batch writer is behind: the database is slow or down). One
connection of the read engine, one batch at a time: places never hold more.
"""

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, text
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from app.auth.errors import InvalidToken
from app.core.admission import PRESSURE_WINDOW_SECONDS, GatePressure, Recent
from app.core.errors import ServiceBusy

MAX_WAITING = 256

# Each asked (student, semester): the ticket they have, or the next ticket, kept in their
# `student_terms` row; drawn in the order asked (`arrival`). A student who no longer exists
# gets none (the caller answers InvalidToken: the route skipped the token's first-use
# lookup). A place a concurrent statement (another worker's batch) issued between this one's
# snapshot and its insert is not returned by either half: `_FIND` reads it afterwards.
_TAKE = text(
    """
    WITH asked AS (
        SELECT student_id, semester_id, arrival
        FROM unnest(CAST(:students AS uuid[]), CAST(:semesters AS integer[]))
             WITH ORDINALITY AS asked (student_id, semester_id, arrival)
    ), existing AS (
        SELECT t.student_id, t.semester_id, t.queue_ticket
        FROM student_terms t JOIN asked a ON a.student_id = t.student_id AND a.semester_id = t.semester_id
        WHERE t.queue_ticket IS NOT NULL
    ), issued AS (
        INSERT INTO student_terms (student_id, semester_id, queue_ticket)
        SELECT a.student_id, a.semester_id, nextval('waiting_room_tickets')
        FROM asked a JOIN students s ON s.id = a.student_id
        WHERE NOT EXISTS (
            SELECT FROM existing e WHERE e.student_id = a.student_id AND e.semester_id = a.semester_id
        )
        ORDER BY a.arrival
        ON CONFLICT (student_id, semester_id) DO UPDATE SET queue_ticket = EXCLUDED.queue_ticket
            WHERE student_terms.queue_ticket IS NULL
        RETURNING student_id, semester_id, queue_ticket
    )
    SELECT student_id, semester_id, queue_ticket FROM existing
    UNION ALL
    SELECT student_id, semester_id, queue_ticket FROM issued
    """
)

_FIND = text(
    """
    SELECT t.student_id, t.semester_id, t.queue_ticket
    FROM student_terms t
    JOIN unnest(CAST(:students AS uuid[]), CAST(:semesters AS integer[])) AS asked (student_id, semester_id)
      ON asked.student_id = t.student_id AND asked.semester_id = t.semester_id
    WHERE t.queue_ticket IS NOT NULL
    """
)

# The constraint a place of a student deleted meanwhile breaks (alembic 0004).
_STUDENT_FOREIGN_KEY = "fk_student_terms_student_id_students"

_Key = tuple[str, int]  # (student id as text, as the rows give it back; semester id)


@dataclass(eq=False, slots=True)
class _Asked:
    key: _Key
    since: float  # when it was asked (the batches' clock)
    answer: "asyncio.Future[int]"
    # Set by the batch's write, in the threadpool; handed to `answer` back on the loop.
    ticket: int | None = None
    error: BaseException | None = None


class PlaceBatches:
    """One worker's places (app.state.places), used from its event loop only."""

    def __init__(
        self, engine: Engine, *, max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._engine = engine
        self._max_waiting = max_waiting
        self._clock = clock
        self._asked: list[_Asked] = []  # waiting for the next batch
        self._writing: list[_Asked] = []  # the batch being written
        self._writer: asyncio.Task[None] | None = None
        # The last places answered, each with how long it took; and the last refused.
        self._answered = Recent(PRESSURE_WINDOW_SECONDS, clock)
        self._refused = Recent(PRESSURE_WINDOW_SECONDS, clock)

    def waiting(self) -> int:
        """Places asked and not yet in a batch being written."""
        return len(self._asked)

    def pressure(self) -> GatePressure:
        """How long places took lately, and how many were refused (the waiting room's pace
        holds while its own places are slow: app/waiting_room/rules.py::pace_step)."""
        pending = self._writing[:1] or self._asked[:1]  # the oldest first
        return GatePressure(
            admitted=self._answered.count(),
            mean_wait_s=self._answered.mean(),
            refused=self._refused.count(),
            oldest_wait_s=self._clock() - pending[0].since if pending else 0.0,
        )

    async def ticket(self, student_id: uuid.UUID, semester_id: int) -> int:
        """The student's ticket in the semester: issued on the first call, the same one on
        every later call, once the batch holding it is written. InvalidToken when the
        student no longer exists; ServiceBusy when MAX_WAITING already wait."""
        if len(self._asked) >= self._max_waiting:
            self._refused.note()
            raise ServiceBusy("Too many places are waiting to be written; retry shortly")
        asked = _Asked((str(student_id), semester_id), self._clock(), asyncio.get_running_loop().create_future())
        self._asked.append(asked)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches())
        return await asked.answer

    async def _write_batches(self) -> None:
        """Write batch after batch while places wait, then stop (the next place starts it again)."""
        try:
            while self._asked:
                self._writing, self._asked = self._asked, []
                await run_in_threadpool(self._write, self._writing)
                now = self._clock()
                for asked in self._writing:
                    self._answered.note(now - asked.since)
                    _settle(asked)
                self._writing = []
        finally:  # cancelled (the worker stops): nobody is left waiting on an answer that will not come
            for asked in (*self._writing, *self._asked):
                if not asked.answer.done():
                    asked.answer.set_exception(ServiceBusy("The worker is stopping; retry shortly"))
            self._writing, self._asked = [], []
            self._writer = None

    def _write(self, batch: list[_Asked]) -> None:
        """Answer every one of `batch` (a ticket or an error); never raises."""
        by_key: dict[_Key, list[_Asked]] = defaultdict(list)
        for asked in batch:  # one student asking twice at once: one row, one answer
            by_key[asked.key].append(asked)
        try:
            tickets = self._tickets(list(by_key))
        except IntegrityError as error:
            if len(by_key) > 1:  # a student or semester deleted meanwhile: one by one, so only theirs fails
                for group in by_key.values():
                    self._write(group)
                return
            cause = _student_gone() if _STUDENT_FOREIGN_KEY in str(error.orig) else error
            for asked in batch:
                asked.error = cause
            return
        except Exception as error:  # the database is down or slow: every place in the batch says so
            for asked in batch:
                asked.error = error
            return
        for key, group in by_key.items():
            for asked in group:
                asked.ticket = tickets.get(key)
                if asked.ticket is None:
                    asked.error = _student_gone()

    def _tickets(self, keys: list[_Key]) -> dict[_Key, int]:
        """Each key's ticket; a key missing from the answer is a student who no longer exists.
        (`begin()` on the read engine, in autocommit: each statement commits on its own.)"""
        with self._engine.begin() as connection:
            found = _found(connection.execute(_TAKE, _arrays(keys)))
            missing = [key for key in keys if key not in found]
            if missing:
                found |= _found(connection.execute(_FIND, _arrays(missing)))
        return found


def _settle(asked: _Asked) -> None:
    """Hand a written place's answer to its request (unless that request was cancelled)."""
    if asked.answer.done():
        return
    if asked.error is not None:
        asked.answer.set_exception(asked.error)
    else:
        assert asked.ticket is not None
        asked.answer.set_result(asked.ticket)


def _student_gone() -> InvalidToken:
    return InvalidToken("The student in this token no longer exists")


def _arrays(keys: list[_Key]) -> dict[str, list[object]]:
    return {"students": [student for student, _ in keys], "semesters": [semester for _, semester in keys]}


def _found(rows: Iterable[Row[Any]]) -> dict[_Key, int]:
    return {(str(row.student_id), row.semester_id): row.queue_ticket for row in rows}
