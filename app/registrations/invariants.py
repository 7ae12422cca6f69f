"""The data invariants of registration, checked from the rows themselves.

Used by the tests, by `scripts/check_invariants.py` after load tests, and by
operators. It reads every registration and every registration event, so it is
an audit, never a hot path. A database that may still be written to is audited
through `audit(engine)`: all of its statements read one snapshot. Four families
of checks:

- per course: the counters equal the rows, nobody over capacity or past the
  reserve limit, reserve positions exactly 1..k, nobody reserved while a seat is free;
- per student and semester: the `student_terms.credits` counter equals the
  credits of the student's registrations there, and no two of those
  registrations have overlapping meetings (the same test as the registration
  rule, `rules.Meeting.overlaps`);
- per ENROLLED/RESERVED event: the student was within the limit in force when
  they registered (`details.credits_after <= details.max_credits`);
- per course, the trail: replaying its events in id order explains the current
  registrations exactly, who is enrolled and who is reserved in which order
  (`replay_course`).
"""

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.registrations.rules import parse_meetings

# One pass over the registrations, grouped per course, beside the course's counters.
_COURSE_TALLY = text(
    """
    SELECT c.id AS course_id,
           c.max_capacity,
           c.reserve_limit,
           c.enrolled_count,
           c.reserved_count,
           count(r.id) FILTER (WHERE r.status = 'ENROLLED') AS enrolled_rows,
           count(r.id) FILTER (WHERE r.status = 'RESERVED') AS reserved_rows,
           count(DISTINCT r.reserve_position) AS distinct_positions,
           coalesce(min(r.reserve_position), 0) AS min_position,
           coalesce(max(r.reserve_position), 0) AS max_position
    FROM courses c
    LEFT JOIN course_registrations r ON r.course_id = c.id
    GROUP BY c.id
    ORDER BY c.id
    """
)

# The credit counter of each (student, semester) beside the credits of its rows;
# only the pairs that disagree (a missing counter row counts as 0).
_CREDIT_COUNTERS = text(
    """
    WITH counted AS (
        SELECT r.student_id, c.semester_id, sum(r.credits) AS credits
        FROM course_registrations r JOIN courses c ON c.id = r.course_id
        GROUP BY r.student_id, c.semester_id
    )
    SELECT coalesce(t.student_id, counted.student_id) AS student_id,
           coalesce(t.semester_id, counted.semester_id) AS semester_id,
           t.credits AS counter,
           coalesce(counted.credits, 0) AS row_credits
    FROM student_terms t
    FULL JOIN counted ON counted.student_id = t.student_id AND counted.semester_id = t.semester_id
    WHERE coalesce(t.credits, 0) <> coalesce(counted.credits, 0)
    ORDER BY 2, 1
    """
)

# Every registration with its course's meetings, grouped by student and semester.
_MEETINGS = text(
    """
    SELECT r.student_id, c.semester_id, c.id AS course_id, c.meetings
    FROM course_registrations r JOIN courses c ON c.id = r.course_id
    WHERE jsonb_array_length(c.meetings) > 0
    ORDER BY r.student_id, c.semester_id, c.id
    """
)

# Registering events that are over their limit, or do not say what the limit was
# (the events the 0004 migration wrote for older rows say {"migrated": true} instead).
_OVER_LIMIT = text(
    """
    SELECT id, course_id, student_id, semester_id, details
    FROM registration_events
    WHERE event_type IN ('ENROLLED', 'RESERVED')
      AND NOT coalesce(details @> '{"migrated": true}', false)
      AND (jsonb_typeof(details -> 'credits_after') IS DISTINCT FROM 'number'
           OR jsonb_typeof(details -> 'max_credits') IS DISTINCT FROM 'number'
           OR (details ->> 'credits_after')::numeric > (details ->> 'max_credits')::numeric)
    ORDER BY id
    """
)

# The trail of every course that still exists, in the order it happened.
_TRAIL = text(
    """
    SELECT e.course_id, e.id, e.event_type::text AS event_type, e.student_id, e.reserve_position
    FROM registration_events e JOIN courses c ON c.id = e.course_id
    WHERE e.event_type IN ('ENROLLED', 'RESERVED', 'PROMOTED', 'DROPPED', 'SWAPPED', 'CANCELLED')
      AND e.student_id IS NOT NULL
    ORDER BY e.course_id, e.id
    """
)

_REGISTRATIONS = text(
    """
    SELECT course_id, student_id, status::text AS status, reserve_position
    FROM course_registrations
    ORDER BY course_id, reserve_position NULLS FIRST, student_id
    """
)

_STUDENT_NUMBERS = text("SELECT id, student_number FROM students")

# A replay reports at most this many inconsistent events per course (and how many more).
MAX_ANOMALIES_PER_COURSE = 3


@dataclass(frozen=True)
class Violation:
    """One broken invariant: about a course, or a student in a semester, or both."""

    course_id: int | None
    problem: str
    student: str | None = None  # the student number (or id, if the student is gone)
    semester_id: int | None = None

    @property
    def subject(self) -> str:
        parts = []
        if self.course_id is not None:
            parts.append(f"course {self.course_id}")
        if self.student is not None:
            parts.append(f"student {self.student}")
        if self.semester_id is not None and self.course_id is None:
            parts.append(f"semester {self.semester_id}")
        return ", ".join(parts) or "database"

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


@dataclass(frozen=True)
class InvariantReport:
    courses_checked: int
    registrations_checked: int
    violations: list[Violation]
    events_replayed: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


# ---- the replay (pure: events in, state and anomalies out) -------------------------------


@dataclass(frozen=True, slots=True)
class TrailEvent:
    id: int
    event_type: str
    student_id: uuid.UUID
    reserve_position: int | None


@dataclass
class Replayed:
    """A course as its trail describes it."""

    enrolled: set[uuid.UUID] = field(default_factory=set)
    reserved: list[uuid.UUID] = field(default_factory=list)  # position 1 first
    anomalies: list[str] = field(default_factory=list)


def replay_course(events: Iterable[TrailEvent], *, name: Any = str) -> Replayed:
    """Replay one course's events in id order.

    ENROLLED adds the student to the enrolled set; RESERVED appends them to the
    reserve queue (and its recorded position must be the queue's length);
    PROMOTED moves them from the queue to the enrolled set; DROPPED, SWAPPED and
    CANCELLED remove them wherever they are (a DROPPED or SWAPPED event records
    the position it left, NULL for a seat, which must agree). An event that does
    not fit the state so far is an anomaly. `name` shows a student id in messages.
    """
    state = Replayed()
    for event in events:
        who = event.student_id
        where = "enrolled" if who in state.enrolled else "reserved" if who in state.reserved else None

        def anomaly(message: str, event: TrailEvent = event) -> None:
            state.anomalies.append(f"event {event.id} ({event.event_type} {name(event.student_id)}): {message}")

        if event.event_type in ("ENROLLED", "RESERVED"):
            if where is not None:
                anomaly(f"the student is already {where}")
                continue
            if event.event_type == "ENROLLED":
                state.enrolled.add(who)
            else:
                state.reserved.append(who)
                if event.reserve_position != len(state.reserved):
                    anomaly(f"recorded position {event.reserve_position}, the replay gives {len(state.reserved)}")
        elif event.event_type == "PROMOTED":
            if where != "reserved":
                anomaly("the student is not on the reserve list" + (" (already enrolled)" if where else ""))
            else:
                state.reserved.remove(who)
            state.enrolled.add(who)
        else:  # DROPPED, SWAPPED, CANCELLED
            if where is None:
                anomaly("the student is not registered")
                continue
            position = state.reserved.index(who) + 1 if where == "reserved" else None
            if event.event_type in ("DROPPED", "SWAPPED") and event.reserve_position != position:
                anomaly(f"recorded position {event.reserve_position}, the replay gives {position}")
            if where == "enrolled":
                state.enrolled.discard(who)
            else:
                state.reserved.remove(who)
    return state


# ---- the audit ---------------------------------------------------------------------------


def audit(engine: Engine, *, trail: bool = True) -> InvariantReport:
    """check_invariants in one REPEATABLE READ, READ ONLY transaction of its own.

    The way to audit a database that registrations may still be committing to (an
    operator during the rush, a benchmark right after its load was cancelled with
    requests in flight): every statement reads the snapshot the first one took.
    """
    connection = engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with connection, connection.begin():
        return check_invariants(connection, trail=trail)


def check_invariants(db: Session | Connection, *, trail: bool = True) -> InvariantReport:
    """Every invariant; `trail=False` leaves out the two that read the audit trail
    (limits at registering, the replay), for data written around the service
    (the benchmark's pgbench ceilings insert rows without events).

    Its statements must all read one snapshot: under READ COMMITTED (PostgreSQL's
    default) each sees its own, so a registration committed between two of them is
    reported as a violation it is not (read the registrations, then the trail with a
    newer event: "the trail has enrolled, but no enrolled row"). `audit(engine)` runs
    it in a REPEATABLE READ transaction; a Session or Connection of its own is
    enough only when nothing else writes (a test after its writers have finished).
    """
    violations: list[Violation] = []
    rows = db.execute(_COURSE_TALLY).all()
    for row in rows:
        violations.extend(Violation(row.course_id, problem) for problem in _course_problems(row))
    numbers: dict[uuid.UUID, str] = {r.id: r.student_number for r in db.execute(_STUDENT_NUMBERS)}

    def name(student_id: uuid.UUID | None) -> str:
        return numbers.get(student_id, str(student_id)) if student_id else "?"

    for counter in db.execute(_CREDIT_COUNTERS):
        shown = "no counter row" if counter.counter is None else f"counter {counter.counter}"
        violations.append(
            Violation(
                None,
                f"{shown} but the registrations hold {counter.row_credits} credits",
                student=name(counter.student_id),
                semester_id=counter.semester_id,
            )
        )
    violations.extend(_overlaps(db.execute(_MEETINGS), name))

    replayed = 0
    if trail:
        for event in db.execute(_OVER_LIMIT):
            details = event.details or {}
            violations.append(
                Violation(
                    event.course_id,
                    f"event {event.id} registered with credits_after {details.get('credits_after')} "
                    f"over max_credits {details.get('max_credits')}",
                    student=name(event.student_id),
                )
            )
        replayed, problems = _replay_all(db, name)
        violations.extend(problems)
    return InvariantReport(
        courses_checked=len(rows),
        registrations_checked=sum(row.enrolled_rows + row.reserved_rows for row in rows),
        violations=violations,
        events_replayed=replayed,
    )


def _course_problems(row: Any) -> Iterator[str]:
    if row.enrolled_rows > row.max_capacity:
        yield f"over-filled: {row.enrolled_rows} enrolled, capacity {row.max_capacity}"
    if row.reserved_rows > row.reserve_limit:
        yield f"reserve list too long: {row.reserved_rows} reserved, limit {row.reserve_limit}"
    if row.enrolled_count != row.enrolled_rows:
        yield f"enrolled_count {row.enrolled_count} but {row.enrolled_rows} enrolled rows"
    if row.reserved_count != row.reserved_rows:
        yield f"reserved_count {row.reserved_count} but {row.reserved_rows} reserved rows"
    if row.reserved_rows and (
        row.min_position != 1 or row.max_position != row.reserved_rows or row.distinct_positions != row.reserved_rows
    ):
        yield (
            f"reserve positions not exactly 1..{row.reserved_rows}: "
            f"min {row.min_position}, max {row.max_position}, {row.distinct_positions} distinct"
        )
    if row.reserved_rows and row.enrolled_rows < row.max_capacity:
        yield f"{row.reserved_rows} reserved while {row.max_capacity - row.enrolled_rows} seats are free"


def _overlaps(rows: Iterable[Any], name: Any) -> Iterator[Violation]:
    """No two of a student's registrations in a semester meet at the same time."""
    for (student_id, semester_id), group in groupby(rows, key=lambda r: (r.student_id, r.semester_id)):
        courses = [(r.course_id, parse_meetings(r.meetings)) for r in group]
        for i, (first_id, first) in enumerate(courses):
            for second_id, second in courses[i + 1 :]:
                if any(a.overlaps(b) for a in first for b in second):
                    yield Violation(
                        None,
                        f"courses {first_id} and {second_id} meet at the same time",
                        student=name(student_id),
                        semester_id=semester_id,
                    )


def _replay_all(db: Session | Connection, name: Any) -> tuple[int, list[Violation]]:
    """Replay every course's trail and compare it with the registrations now."""
    current: dict[int, tuple[set[uuid.UUID], list[uuid.UUID]]] = {}
    for row in db.execute(_REGISTRATIONS):
        enrolled, reserved = current.setdefault(row.course_id, (set(), []))
        if row.status == "ENROLLED":
            enrolled.add(row.student_id)
        else:
            reserved.append(row.student_id)  # in position order (the audit above checks 1..k)

    violations: list[Violation] = []
    replayed = 0
    trail = db.execute(_TRAIL, execution_options={"yield_per": 10_000})
    seen: set[int] = set()
    for course_id, group in groupby(trail, key=lambda r: r.course_id):
        seen.add(course_id)
        events = [TrailEvent(r.id, r.event_type, r.student_id, r.reserve_position) for r in group]
        replayed += len(events)
        state = replay_course(events, name=name)
        enrolled, reserved = current.get(course_id, (set(), []))
        violations.extend(_compare(course_id, state, enrolled, reserved, name))
    for course_id in current.keys() - seen:
        enrolled, reserved = current[course_id]
        violations.extend(_compare(course_id, Replayed(), enrolled, reserved, name))
    violations.sort(key=lambda v: v.course_id or 0)
    return replayed, violations


def _compare(
    course_id: int,
    state: Replayed,
    enrolled: set[uuid.UUID],
    reserved: Sequence[uuid.UUID],
    name: Any,
) -> Iterator[Violation]:
    extra = len(state.anomalies) - MAX_ANOMALIES_PER_COURSE
    for anomaly in state.anomalies[:MAX_ANOMALIES_PER_COURSE]:
        yield Violation(course_id, f"trail: {anomaly}")
    if extra > 0:
        yield Violation(course_id, f"trail: {extra} more inconsistent events")

    def names(ids: Iterable[uuid.UUID]) -> str:
        shown = sorted(name(i) for i in ids)
        return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")

    if missing := enrolled - state.enrolled:
        yield Violation(course_id, f"enrolled without an event that explains it: {names(missing)}")
    if ghosts := state.enrolled - enrolled:
        yield Violation(course_id, f"the trail has enrolled, but no enrolled row: {names(ghosts)}")
    if list(reserved) != state.reserved:
        now_list, trail_list = [name(i) for i in reserved][:10], [name(i) for i in state.reserved][:10]
        yield Violation(course_id, f"reserve list {now_list} but the trail gives {trail_list}")
