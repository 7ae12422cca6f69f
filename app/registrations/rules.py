"""The decisions of registering and dropping, as pure functions.

The service locks the course row, reads its counters, and hands them here as
plain values; what comes back says what to write. Nothing here touches the
database, so these rules are tested by the hundred without one
(tests/registrations/test_registration_rules.py), and the integration tests keep to locking.
"""

from dataclasses import dataclass
from datetime import datetime

from app.registrations.errors import CourseFull, RegistrationClosed
from app.registrations.models import RegistrationStatus


@dataclass(frozen=True, slots=True)
class SeatCounters:
    """A course's seats and reserve list, as kept on its (locked) row."""

    max_capacity: int
    reserve_limit: int
    enrolled_count: int
    reserved_count: int


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new registration goes, and the course's counters once it is in."""

    status: RegistrationStatus
    reserve_position: int | None
    enrolled_count: int
    reserved_count: int


@dataclass(frozen=True, slots=True)
class Vacancy:
    """What a drop leaves behind.

    `vacated_position` is the reserve position that everyone behind moves up
    into: the dropped student's own position, or 0 when a seat was freed and
    reserve position 1 takes it (a free seat counts as "position 0"). None when
    nobody moves.
    """

    vacated_position: int | None
    enrolled_count: int
    reserved_count: int


def ensure_window_open(*, registration_start: datetime, registration_end: datetime, now: datetime) -> None:
    """Registration and drops are accepted from the start (inclusive) to the end (exclusive)."""
    if not (registration_start <= now < registration_end):
        raise RegistrationClosed()


def place_registration(seats: SeatCounters) -> Placement:
    """Enroll while seats are free, else the tail of the reserve list; CourseFull past both."""
    if seats.enrolled_count < seats.max_capacity:
        return Placement(RegistrationStatus.ENROLLED, None, seats.enrolled_count + 1, seats.reserved_count)
    if seats.reserved_count < seats.reserve_limit:
        position = seats.reserved_count + 1
        return Placement(RegistrationStatus.RESERVED, position, seats.enrolled_count, position)
    raise CourseFull()


def vacate(seats: SeatCounters, *, dropped_status: RegistrationStatus, dropped_position: int | None) -> Vacancy:
    """The counters after a drop, and who moves up.

    Dropping a reserved registration closes its gap in the list. Dropping an
    enrolled one frees a seat: reserve position 1 takes it at once, so the
    enrolled count stays and the list shortens; with nobody waiting, the seat
    stays free.
    """
    if dropped_status == RegistrationStatus.RESERVED:
        if dropped_position is None:
            raise ValueError("a reserved registration has a position")
        return Vacancy(dropped_position, seats.enrolled_count, seats.reserved_count - 1)
    if seats.reserved_count > 0:
        return Vacancy(0, seats.enrolled_count, seats.reserved_count - 1)
    return Vacancy(None, seats.enrolled_count - 1, seats.reserved_count)
