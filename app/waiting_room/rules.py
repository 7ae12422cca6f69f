"""The waiting room's decisions, as pure functions: is a room on, what a place's
estimate is, and how the adaptive pace moves. Unit-tested without a database
(tests/waiting_room/test_room_rules.py)."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.core.admission import GatePressure

# A client whose turn is at most this far off is told to come back at its turn. One whose
# turn is further off is told to come back sooner, to see a fresh estimate (the pace
# adapts), but not every few seconds: the crowd's asking is work taken from the admitted
# students (at 10,000 students, 8,000 waiting and asking every 16-30 s were a third of the
# API's requests). After somewhere between half and three quarters of its wait, at most
# MAX_RETRY_AFTER_SECONDS, spread by ticket so that the thousands who arrived in the same
# second never come back in the same second. No answer makes a client wait less than 1 s.
COME_AT_TURN_SECONDS = 30
MAX_RETRY_AFTER_SECONDS = 120
# Consecutive tickets, spread evenly over [0, 1): the golden ratio's fractional multiples.
_GOLDEN = 0.6180339887498949
# No estimate reaches further than this (a crawling pace would otherwise say "in a century").
MAX_ESTIMATE_SECONDS = 7 * 24 * 3600.0


def room_is_on(
    *,
    enabled: bool | None,
    registration_start: datetime,
    registration_end: datetime,
    now: datetime,
    default_minutes: float,
) -> bool:
    """Only while registration is open (outside the window the rules refuse anyway); then
    the registrar's switch when set, else on for the window's first `default_minutes`."""
    if not registration_start <= now < registration_end:
        return False
    if enabled is not None:
        return enabled
    return default_minutes > 0 and now < registration_start + timedelta(minutes=default_minutes)


@dataclass(frozen=True, slots=True)
class RoomState:
    """A room as one worker last read it (at `read_at`, its monotonic clock)."""

    semester_id: int
    on: bool
    registration_open: bool = True
    admitted_through: int = 0
    rate_per_s: float = 0.0
    # Seconds from the read to the frontier's last move, by the database's clock (<= 0):
    # estimates never compare two machines' clocks.
    frontier_offset_s: float = 0.0
    # The pace is the adaptive one (it may grow while a client waits), not the registrar's.
    adaptive: bool = False
    read_at: float = 0.0
    # The adaptive pace before a cut, when this read's move of the frontier cut it (it asked
    # for a cut and the cooldown allowed one): one worker of all reads each cut so.
    pace_cut_from: float | None = None

    def admits(self, ticket: int) -> bool:
        return not self.on or ticket <= self.admitted_through


@dataclass(frozen=True, slots=True)
class Estimate:
    admitted: bool
    # Tickets ahead of this one up to the frontier, itself included (0 once admitted). Tickets
    # are numbered across every room, so with two rooms filling at once this is an upper bound.
    position: int
    estimated_admission_at: datetime
    # Seconds a client should wait before asking again (None once admitted).
    retry_after: int | None


def estimate(
    *, ticket: int, room: RoomState, now: datetime, monotonic_now: float, fallback_rate_per_s: float
) -> Estimate:
    """When `ticket` should be admitted, at the room's pace from its frontier's last move; and
    when to ask again: at the soonest its turn can come (an adaptive pace may grow meanwhile)."""
    if room.admits(ticket):
        return Estimate(admitted=True, position=0, estimated_admission_at=now, retry_after=None)
    position = ticket - room.admitted_through
    # The pace the frontier last moved at; before its first move, the adaptive pace's start.
    rate = room.rate_per_s if room.rate_per_s > 0 else fallback_rate_per_s
    since_read = monotonic_now - room.read_at
    wait = min(MAX_ESTIMATE_SECONDS, max(0.0, room.frontier_offset_s + position / rate - since_read))
    soonest = wait
    if room.adaptive:
        soonest = min(wait, max(0.0, room.frontier_offset_s + soonest_turn_s(position, rate) - since_read))
    retry_after = max(1, math.ceil(soonest))
    if soonest > COME_AT_TURN_SECONDS:
        longest = min(MAX_RETRY_AFTER_SECONDS, 0.75 * wait)
        spread = math.ceil(longest * (1 - (ticket * _GOLDEN % 1.0) / 3))  # in (longest * 2/3, longest]
        retry_after = min(spread, retry_after)
    return Estimate(
        admitted=False,
        position=position,
        estimated_admission_at=now + timedelta(seconds=wait),
        retry_after=retry_after,
    )


def soonest_turn_s(position: int, rate: float) -> float:
    """Seconds until the frontier passes `position` more tickets if the adaptive pace grows
    from `rate` as fast as it can (PACE_GROWTH_MIN_PER_S a second while that is more than
    PACE_GROWTH_PER_S of itself, then that share). A client told to come back at its turn by
    the pace of the moment comes late whenever the pace grows meanwhile: measured, students
    learned of their admission 4 s late at the median (p90 8-21 s) while the pace grew, and
    the load of the students it admitted reached the gates that much later than the pace
    thought. Coming at the soonest turn costs another estimate when the pace holds instead."""
    linear_until = max(0.0, (PACE_GROWTH_MIN_PER_S / PACE_GROWTH_PER_S - rate) / PACE_GROWTH_MIN_PER_S)
    linear_distance = rate * linear_until + PACE_GROWTH_MIN_PER_S * linear_until**2 / 2
    if position <= linear_distance:
        return (math.sqrt(rate**2 + 2 * PACE_GROWTH_MIN_PER_S * position) - rate) / PACE_GROWTH_MIN_PER_S
    rate_then = rate + PACE_GROWTH_MIN_PER_S * linear_until
    return linear_until + math.log1p(PACE_GROWTH_PER_S * (position - linear_distance) / rate_then) / PACE_GROWTH_PER_S


# ---- the adaptive pace ------------------------------------------------------------------------------
#
# The pace is the throughput the service sustains, found the way TCP finds a link's
# (slow increase, multiplicative decrease): it grows by 2% a second while admitted
# students' requests go straight through the worker's gates and its event loop runs on
# time, holds once they queue a little, and is cut by a fifth when they queue long or are
# refused, at most once per cooldown. Students admitted now send their requests over the
# next 5-15 seconds (a status read, the course list, a think time before each
# registration): growth at g per second overshoots by about (1 + g) ** 10 before the first
# sign of it (6% a second overshot 2.5-fold in a measured run, 25% fifteen-fold), and
# cutting again before the last cut's students have passed collapses the pace.


class PaceStep(StrEnum):
    GROW = "grow"
    HOLD = "hold"
    CUT = "cut"


PACE_GROWTH_PER_S = 0.02  # a share of the pace, per second of growth
PACE_GROWTH_MIN_PER_S = 1.0  # students/s per second, at least
PACE_CUT = 0.8  # the pace after a cut, as a share of the pace before
# Mean time an admitted request queued (or the loop ran late) in the last second: above
# HOLD, no growth; above CUT, a cut. So is a request still queued for CUT_OLDEST, or more
# than CUT_REFUSED_SHARE of a gate's requests refused (a few 503s on one hot course are
# not the pace's doing: the course's share of the gate is).
PACE_HOLD_WAIT_S = 0.02
PACE_CUT_WAIT_S = 0.1
PACE_CUT_OLDEST_WAIT_S = 0.25
PACE_CUT_REFUSED_SHARE = 0.05
# The crowd's wait at the door holds the pace and never cuts it: new connections waiting
# to be accepted (AcceptQueue) and the waiting room's own places are the waiting crowd,
# which admitting fewer does not relieve. Measured: cutting on them, or stopping the
# frontier while they waited, left the places as slow and cut the throughput by up to half
# (docs/performance.md, "Where the crowd waited").


def pace_step(pressure: GatePressure) -> PaceStep:
    """What the adaptive pace does under this worker's pressure (`worker_pressure`): the worst
    of its gates' queues and refusals and its event loop's lateness (requests wait there
    first when the workers' CPU is the limit); the crowd's wait at the door only holds it."""
    waited = max(pressure.mean_wait_s, pressure.loop_lag_s)
    refused_share = pressure.refused / max(pressure.admitted + pressure.refused, 1)
    if (
        waited > PACE_CUT_WAIT_S
        or pressure.oldest_wait_s > PACE_CUT_OLDEST_WAIT_S
        or refused_share > PACE_CUT_REFUSED_SHARE
    ):
        return PaceStep.CUT
    if waited > PACE_HOLD_WAIT_S or max(pressure.accept_wait_s, pressure.place_wait_s) > PACE_HOLD_WAIT_S:
        return PaceStep.HOLD
    return PaceStep.GROW
