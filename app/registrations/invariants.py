"""The data invariants of registration, checked from the rows themselves.

Used by the tests, by `scripts/check_invariants.py` after load tests, and by
operators. It reads every registration, so it is an audit, never a hot path.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class Violation:
    course_id: int
    problem: str

    def __str__(self) -> str:
        return f"course {self.course_id}: {self.problem}"


@dataclass(frozen=True)
class InvariantReport:
    courses_checked: int
    registrations_checked: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


def check_invariants(db: Session | Connection) -> InvariantReport:
    violations: list[Violation] = []
    rows = db.execute(_COURSE_TALLY).all()
    for row in rows:

        def problem(message: str, course_id: int = row.course_id) -> None:
            violations.append(Violation(course_id, message))

        if row.enrolled_rows > row.max_capacity:
            problem(f"over-filled: {row.enrolled_rows} enrolled, capacity {row.max_capacity}")
        if row.reserved_rows > row.reserve_limit:
            problem(f"reserve list too long: {row.reserved_rows} reserved, limit {row.reserve_limit}")
        if row.enrolled_count != row.enrolled_rows:
            problem(f"enrolled_count {row.enrolled_count} but {row.enrolled_rows} enrolled rows")
        if row.reserved_count != row.reserved_rows:
            problem(f"reserved_count {row.reserved_count} but {row.reserved_rows} reserved rows")
        if row.reserved_rows and (
            row.min_position != 1
            or row.max_position != row.reserved_rows
            or row.distinct_positions != row.reserved_rows
        ):
            problem(
                f"reserve positions not exactly 1..{row.reserved_rows}: "
                f"min {row.min_position}, max {row.max_position}, {row.distinct_positions} distinct"
            )
        if row.reserved_rows and row.enrolled_rows < row.max_capacity:
            problem(f"{row.reserved_rows} reserved while {row.max_capacity - row.enrolled_rows} seats are free")
    return InvariantReport(
        courses_checked=len(rows),
        registrations_checked=sum(row.enrolled_rows + row.reserved_rows for row in rows),
        violations=violations,
    )
