"""The waiting room's queries: a student's place, a room's state and its frontier, and
the registrar's switch.

Every statement runs alone on the read engine (autocommit: one round trip, its own
pool): the crowd asking for places at the opening never waits for the connections
that registrations hold. A place is a ticket from the one `waiting_room_tickets`
sequence, kept in the student's `student_terms` row (an upsert, no lock on the
student: no rule reads the ticket), written in the worker's next batch of places
(app/waiting_room/places.py). The frontier moves in one guarded
statement (`_ADVANCE`): whichever worker of whichever node first finds it due moves
it, at most once per WAITING_ROOM_TICK_SECONDS; the others skip the locked row and
read it.
"""

import time
import uuid
from datetime import datetime, timedelta

from pydantic import Field
from sqlalchemy import Connection, Engine, RowMapping, Uuid, bindparam, text
from sqlalchemy.orm import Session

from app.auth.service import ensure_student_exists
from app.core.config import Settings
from app.registrations.errors import RegistrationClosed
from app.semesters.service import ensure_semester_exists
from app.waiting_room.errors import NoQueuePlace
from app.waiting_room.places import PlaceBatches
from app.waiting_room.rules import (
    PACE_CUT,
    PACE_GROWTH_MIN_PER_S,
    PACE_GROWTH_PER_S,
    PaceStep,
    RoomState,
    estimate,
    room_is_on,
)
from app.waiting_room.schemas import QueuePlaceRead
from app.waiting_room.tokens import create_admission_token, place_claims


class QueuePlace(QueuePlaceRead):
    """The answer to a place, as the client sees it."""

    # Seconds before asking again, for the Retry-After header (None once admitted); never in the body.
    retry_after: int | None = Field(default=None, exclude=True)


_STUDENT = bindparam("student", type_=Uuid())

_FIND_PLACE = text(
    "SELECT queue_ticket FROM student_terms WHERE student_id = :student AND semester_id = :semester"
).bindparams(_STUDENT)

_ROOM = text(
    """
    SELECT s.registration_start, s.registration_end, w.enabled, w.semester_id IS NOT NULL AS has_room
    FROM semesters s LEFT JOIN waiting_rooms w ON w.semester_id = s.id
    WHERE s.id = :semester
    """
)

# A room on by default has no row until it is first needed.
_OPEN_ROOM = text("INSERT INTO waiting_rooms (semester_id) VALUES (:semester) ON CONFLICT (semester_id) DO NOTHING")

# Move the frontier, if it is due (last moved at least :tick seconds ago) and no other worker
# is moving it right now (SKIP LOCKED): by the pace times the time since its last move, over
# exactly that many of this room's waiting tickets, in ticket order. With fewer waiting, all
# of them, and the clock restarts (no credit piles up for a later burst). The pace: the
# registrar's, or the adaptive one, from its last value (:initial_rate before the first
# move) by :step, the pressure in the worker moving it (app/waiting_room/rules.py): grown by
# a share of itself (at least :growth_min) per second, held, or cut to :cut of itself if the
# last cut is :cooldown seconds old; within [:min_rate, :max_rate], and never grown while
# fewer waited than it would admit. Then the room's state, moved or not, and the pace before
# the cut when this statement cut it.
_ADVANCE = text(
    """
    WITH due AS (
        SELECT w.semester_id, w.admitted_through, w.frontier_at, w.fixed_rate_per_s,
               COALESCE(NULLIF(w.rate_per_s, 0), CAST(:initial_rate AS float8)) AS previous_rate,
               extract(epoch FROM now() - w.frontier_at) AS idle_s,
               w.fixed_rate_per_s IS NULL AND :step = 'cut' AND (
                   w.pace_cut_at IS NULL
                   OR w.pace_cut_at <= now() - make_interval(secs => CAST(:cooldown AS float8))
               ) AS cut
        FROM waiting_rooms w
        WHERE w.semester_id = :semester AND w.frontier_at <= now() - make_interval(secs => CAST(:tick AS float8))
        FOR UPDATE SKIP LOCKED
    ), paced AS (
        SELECT due.*, COALESCE(due.fixed_rate_per_s, LEAST(CAST(:max_rate AS float8), GREATEST(
                   CAST(:min_rate AS float8),
                   CASE WHEN due.cut THEN due.previous_rate * :cut
                        WHEN :step = 'grow' THEN due.previous_rate
                             + GREATEST(CAST(:growth_min AS float8), :growth * due.previous_rate)
                             * LEAST(due.idle_s, 1.0)
                        ELSE due.previous_rate END))) AS rate
        FROM due
    ), step AS (
        SELECT paced.*, floor(paced.rate * paced.idle_s)::bigint AS n FROM paced
    ), target AS (
        SELECT s.semester_id, s.rate, s.previous_rate, s.cut, s.n, max(t.queue_ticket) AS through,
               count(t.queue_ticket) AS taken
        FROM step s LEFT JOIN LATERAL (
            SELECT queue_ticket FROM student_terms
            WHERE semester_id = s.semester_id AND queue_ticket > s.admitted_through
            ORDER BY queue_ticket LIMIT s.n
        ) t ON true
        GROUP BY s.semester_id, s.rate, s.previous_rate, s.cut, s.n
    ), advanced AS (
        UPDATE waiting_rooms w
        SET admitted_through = COALESCE(t.through, w.admitted_through),
            frontier_at = CASE WHEN t.taken < t.n THEN now()
                               ELSE w.frontier_at + make_interval(secs => t.n / t.rate) END,
            rate_per_s = CASE WHEN t.taken < t.n AND w.fixed_rate_per_s IS NULL
                              THEN LEAST(t.rate, GREATEST(t.previous_rate, CAST(:min_rate AS float8)))
                              ELSE t.rate END,
            pace_cut_at = CASE WHEN t.cut THEN now() ELSE w.pace_cut_at END
        FROM target t
        WHERE w.semester_id = t.semester_id
        RETURNING w.admitted_through, w.rate_per_s, w.frontier_at, w.fixed_rate_per_s IS NULL AS adaptive,
                  CASE WHEN t.cut THEN t.previous_rate END AS cut_from
    )
    SELECT admitted_through, rate_per_s, extract(epoch FROM frontier_at - now()) AS frontier_offset_s, adaptive,
           cut_from
    FROM advanced
    UNION ALL
    SELECT admitted_through, rate_per_s, extract(epoch FROM frontier_at - now()), fixed_rate_per_s IS NULL, NULL
    FROM waiting_rooms
    WHERE semester_id = :semester AND NOT EXISTS (SELECT FROM advanced)
    """
)

_COURSE_SEMESTER = text("SELECT semester_id FROM courses WHERE id = :course")

_SET_ROOM = text(
    """
    INSERT INTO waiting_rooms (semester_id, enabled, fixed_rate_per_s) VALUES (:semester, :enabled, :fixed_rate)
    ON CONFLICT (semester_id) DO UPDATE
    SET enabled = EXCLUDED.enabled, fixed_rate_per_s = EXCLUDED.fixed_rate_per_s, updated_at = now(),
        -- switched, or its pace changed: an adaptive pace starts again from the initial rate
        rate_per_s = CASE WHEN (waiting_rooms.enabled, waiting_rooms.fixed_rate_per_s)
                               IS NOT DISTINCT FROM (EXCLUDED.enabled, EXCLUDED.fixed_rate_per_s)
                          THEN waiting_rooms.rate_per_s ELSE 0 END,
        pace_cut_at = CASE WHEN (waiting_rooms.enabled, waiting_rooms.fixed_rate_per_s)
                                IS NOT DISTINCT FROM (EXCLUDED.enabled, EXCLUDED.fixed_rate_per_s)
                           THEN waiting_rooms.pace_cut_at END
    """
)

_STATUS = text(
    """
    SELECT s.id AS semester_id, s.registration_start, s.registration_end, w.enabled, w.fixed_rate_per_s,
           COALESCE(w.rate_per_s, 0) AS rate_per_s, COALESCE(w.admitted_through, 0) AS admitted_through,
           (SELECT count(*) FROM student_terms t
            WHERE t.semester_id = s.id AND t.queue_ticket IS NOT NULL) AS places,
           (SELECT count(*) FROM student_terms t
            WHERE t.semester_id = s.id AND t.queue_ticket > COALESCE(w.admitted_through, 0)) AS waiting
    FROM semesters s LEFT JOIN waiting_rooms w ON w.semester_id = s.id
    WHERE s.id = :semester
    """
)


# ---- a room's state (read by app/waiting_room/state.py, once per tick per worker) ------------------


def load_room(
    engine: Engine, *, semester_id: int, now: datetime, settings: Settings, pace_step: PaceStep = PaceStep.HOLD
) -> RoomState | None:
    """The room as it is now, its frontier moved first if due (the adaptive pace grown, held or
    cut by `pace_step`: app/waiting_room/rules.py); None when there is no such semester.
    (`begin()`: on the read engine, in autocommit, it sends no BEGIN and no COMMIT; on another
    engine it still commits what it wrote.)"""
    with engine.begin() as connection:
        row = connection.execute(_ROOM, {"semester": semester_id}).one_or_none()
        if row is None:
            return None
        registration_open = row.registration_start <= now < row.registration_end
        on = room_is_on(
            enabled=row.enabled,
            registration_start=row.registration_start,
            registration_end=row.registration_end,
            now=now,
            default_minutes=settings.waiting_room_default_minutes,
        )
        if not on:
            return RoomState(semester_id, on=False, registration_open=registration_open, read_at=time.monotonic())
        if not row.has_room:
            connection.execute(_OPEN_ROOM, {"semester": semester_id})
        frontier = _advance(connection, semester_id=semester_id, settings=settings, pace_step=pace_step)
    return RoomState(
        semester_id,
        on=True,
        registration_open=registration_open,
        admitted_through=frontier.admitted_through,
        rate_per_s=frontier.rate_per_s,
        frontier_offset_s=float(frontier.frontier_offset_s),
        adaptive=frontier.adaptive,
        read_at=time.monotonic(),
        pace_cut_from=frontier.cut_from,
    )


def _advance(connection: Connection, *, semester_id: int, settings: Settings, pace_step: PaceStep) -> RowMapping:
    return (
        connection.execute(
            _ADVANCE,
            {
                "semester": semester_id,
                "tick": settings.waiting_room_tick_seconds,
                "step": pace_step.value,
                "growth": PACE_GROWTH_PER_S,
                "growth_min": PACE_GROWTH_MIN_PER_S,
                "cut": PACE_CUT,
                "cooldown": settings.waiting_room_cut_cooldown_seconds,
                "initial_rate": settings.waiting_room_initial_rate_per_s,
                "min_rate": settings.waiting_room_min_rate_per_s,
                "max_rate": settings.waiting_room_max_rate_per_s,
            },
        )
        .mappings()
        .one()
    )


def course_semester(engine: Engine, *, course_id: int) -> int | None:
    with engine.connect() as connection:
        semester_id: int | None = connection.scalar(_COURSE_SEMESTER, {"course": course_id})
    return semester_id


# ---- a student's place ------------------------------------------------------------------------------


async def take_place(
    places: PlaceBatches, *, student_id: uuid.UUID, room: RoomState, now: datetime, settings: Settings
) -> QueuePlace:
    """The student's place in the room: issued on the first call, the same one on every later
    call (written in the worker's next batch, awaited on the event loop: app/waiting_room/places.py). Only while
    registration is open (else RegistrationClosed): a place taken before the opening would
    let early arrivals in ahead of the room's order. The statement proves the student exists
    (InvalidToken when not): the route skips the token's first-use lookup."""
    if not room.registration_open:
        raise RegistrationClosed()
    ticket = await places.ticket(student_id, room.semester_id)
    return _place(ticket, student_id=student_id, room=room, now=now, settings=settings)


def find_place(
    engine: Engine, *, student_id: uuid.UUID, room: RoomState, now: datetime, settings: Settings
) -> QueuePlace:
    """The student's place as it stands now (its row proves the student exists); NoQueuePlace
    when they never asked for one, InvalidToken when they no longer exist."""
    with engine.connect() as connection:
        ticket = connection.scalar(_FIND_PLACE, {"student": student_id, "semester": room.semester_id})
    if ticket is None:
        ensure_student_exists(engine, student_id)  # a gone student's token is 401, not 404
        raise NoQueuePlace()
    return _place(ticket, student_id=student_id, room=room, now=now, settings=settings)


def place_of_token(
    admission_token: str, *, student_id: uuid.UUID, room: RoomState, now: datetime, settings: Settings
) -> QueuePlace:
    """The place an admission token names, as it stands now, without a query: the token is
    signed, so its ticket is the one this student was given in this semester
    (AdmissionTokenInvalid when it is not theirs, or not this semester's)."""
    claims = place_claims(
        admission_token, student_id=student_id, semester_id=room.semester_id, secret_key=settings.secret_key
    )
    return _place(claims.ticket, student_id=student_id, room=room, now=now, settings=settings)


def _place(ticket: int, *, student_id: uuid.UUID, room: RoomState, now: datetime, settings: Settings) -> QueuePlace:
    guess = estimate(
        ticket=ticket,
        room=room,
        now=now,
        monotonic_now=time.monotonic(),
        fallback_rate_per_s=settings.waiting_room_initial_rate_per_s,
    )
    token = create_admission_token(
        student_id=student_id,
        semester_id=room.semester_id,
        ticket=ticket,
        secret_key=settings.secret_key,
        now=now,
        lifetime=timedelta(minutes=settings.admission_token_expire_minutes),
    )
    return QueuePlace(
        semester_id=room.semester_id,
        position=guess.position,
        admitted=guess.admitted,
        estimated_admission_at=guess.estimated_admission_at,
        admission_token=token,
        retry_after=guess.retry_after,
    )


# ---- the registrar's switch -------------------------------------------------------------------------


def set_room(
    session: Session,
    *,
    semester_id: int,
    enabled: bool | None,
    fixed_rate_per_s: float | None,
    now: datetime,
    settings: Settings,
) -> dict[str, object]:
    """Switch the room on or off (or back to the default rule) and set its pace (None: adaptive).
    Places already given keep their order: switched on mid-rush, the room admits them first,
    at its pace. Every worker sees the change within WAITING_ROOM_TICK_SECONDS."""
    with session.begin():
        connection = session.connection()
        ensure_semester_exists(connection, semester_id=semester_id)
        connection.execute(_SET_ROOM, {"semester": semester_id, "enabled": enabled, "fixed_rate": fixed_rate_per_s})
        return _status(connection, semester_id=semester_id, now=now, settings=settings)


def room_status(engine: Engine, *, semester_id: int, now: datetime, settings: Settings) -> dict[str, object]:
    with engine.connect() as connection:
        ensure_semester_exists(connection, semester_id=semester_id)
        return _status(connection, semester_id=semester_id, now=now, settings=settings)


def _status(connection: Connection, *, semester_id: int, now: datetime, settings: Settings) -> dict[str, object]:
    row = connection.execute(_STATUS, {"semester": semester_id}).mappings().one()
    active = room_is_on(
        enabled=row["enabled"],
        registration_start=row["registration_start"],
        registration_end=row["registration_end"],
        now=now,
        default_minutes=settings.waiting_room_default_minutes,
    )
    return {
        "semester_id": row["semester_id"],
        "enabled": row["enabled"],
        "active": active,
        "fixed_rate_per_s": row["fixed_rate_per_s"],
        "rate_per_s": row["rate_per_s"],
        "admitted_through": row["admitted_through"],
        "places": row["places"],
        "waiting": row["waiting"] if active else 0,
    }
