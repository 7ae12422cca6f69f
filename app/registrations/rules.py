"""The decisions of registering and dropping, as pure functions.

The service locks the course row, reads its counters, and hands them here as
plain values; what comes back says what to write. Nothing here touches the
database, so these rules are tested by the hundred without one
(tests/registrations/test_registration_rules.py), and the integration tests keep to locking.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from app.registrations.errors import (
    AlreadyRegistered,
    AppointmentNotStarted,
    CapacityBelowEnrolled,
    CourseCancelled,
    CourseFull,
    CreditLimitExceeded,
    PrerequisiteMissing,
    RegistrationClosed,
    RegistrationHold,
    ReserveBelowReserved,
    ScheduleConflict,
)
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


# ---- the student's side: appointments, holds, prerequisites, time conflicts, credits --------------

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


@dataclass(frozen=True, slots=True)
class Meeting:
    """One weekly meeting, in minutes after midnight: [start, end)."""

    day: str
    start: int
    end: int

    @classmethod
    def parse(cls, meeting: Mapping[str, str]) -> "Meeting":
        return cls(meeting["day"], _minutes(meeting["start"]), _minutes(meeting["end"]))

    def overlaps(self, other: "Meeting") -> bool:
        # Touching ends (10:30 and 10:30) do not overlap.
        return self.day == other.day and self.start < other.end and other.start < self.end


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def parse_meetings(meetings: Iterable[Mapping[str, str]]) -> tuple[Meeting, ...]:
    return tuple(Meeting.parse(meeting) for meeting in meetings)


def schedule_text(meetings: Iterable[Mapping[str, str]]) -> str:
    """`schedule` for old clients: "Mon 09:00-10:30, Wed 09:00-10:30"."""
    return ", ".join(f"{m['day'].title()} {m['start']}-{m['end']}" for m in meetings)


@dataclass(frozen=True, slots=True)
class CourseRules:
    """What registering for a course asks of the student (read without the course lock:
    none of it changes while registrations run)."""

    course_id: int
    code: str
    credits: int
    meetings: tuple[Meeting, ...]
    prerequisites: tuple[str, ...]
    registration_start: datetime
    registration_end: datetime
    cancelled: bool


@dataclass(frozen=True, slots=True)
class Registered:
    """One of the student's ENROLLED or RESERVED registrations in the semester."""

    course_id: int
    credits: int
    meetings: tuple[Meeting, ...]


@dataclass(frozen=True, slots=True)
class StudentStanding:
    """What the rules read about the student, under the student's lock."""

    max_credits: int
    credits: int  # ENROLLED + RESERVED credits in the semester (the counter)
    opens_at: datetime | None  # the appointment; None: with the semester
    hold_reasons: tuple[str, ...]
    completed: frozenset[str]  # of the course's prerequisites, those completed
    registered: tuple[Registered, ...]

    def without(self, course_id: int) -> "StudentStanding":
        """As if the student were not in `course_id` (a swap judges the new course so)."""
        kept = tuple(r for r in self.registered if r.course_id != course_id)
        freed = sum(r.credits for r in self.registered if r.course_id == course_id)
        return replace(self, registered=kept, credits=self.credits - freed)


def check_student_rules(course: CourseRules, student: StudentStanding, *, now: datetime) -> None:
    """Rules 1-7 of registering, in their order; seats (rule 8) are decided under the course lock."""
    ensure_window_open(registration_start=course.registration_start, registration_end=course.registration_end, now=now)
    if course.cancelled:
        raise CourseCancelled()
    opens_at = student.opens_at or course.registration_start
    if now < opens_at:
        raise AppointmentNotStarted(opens_at)
    if student.hold_reasons:
        raise RegistrationHold(list(student.hold_reasons))
    if any(r.course_id == course.course_id for r in student.registered):
        raise AlreadyRegistered()
    missing = [code for code in course.prerequisites if code not in student.completed]
    if missing:
        raise PrerequisiteMissing(missing)
    for registered in student.registered:
        if any(mine.overlaps(theirs) for mine in course.meetings for theirs in registered.meetings):
            raise ScheduleConflict(registered.course_id)
    if student.credits + course.credits > student.max_credits:
        raise CreditLimitExceeded(
            credits=student.credits, course_credits=course.credits, max_credits=student.max_credits
        )


@dataclass(frozen=True, slots=True)
class Resize:
    """A registrar's new limits: how many reserve heads take new seats, and the counters after."""

    promote: int
    enrolled_count: int
    reserved_count: int


def resize(seats: SeatCounters, *, max_capacity: int, reserve_limit: int) -> Resize:
    """New seats go to the reserve list's head first come first served, as many as
    they allow; nobody is ever removed by an edit."""
    if max_capacity < seats.enrolled_count:
        raise CapacityBelowEnrolled()
    promote = min(max_capacity - seats.enrolled_count, seats.reserved_count)
    reserved = seats.reserved_count - promote
    if reserve_limit < reserved:
        raise ReserveBelowReserved()
    return Resize(promote, seats.enrolled_count + promote, reserved)
