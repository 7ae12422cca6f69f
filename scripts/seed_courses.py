"""Seed a dozen courses in each demo semester (those seed_semesters makes). Idempotent.

The catalogue exercises every registration rule (issue 12): each course has a
code, credits and real weekly meetings (`schedule` is their text); three pairs
of courses overlap on purpose (Operating Systems and Compilers, Database Systems
and Distributed Systems, Computer Networks and the Quantum Computing Lab), and
Linear Algebra ends exactly when Introduction to Computer Science starts (no
conflict); CS101 -> CS201 -> CS301 (and CS401) is a prerequisite chain. Most
courses are large; a few are small, with short reserve lists, so that load
tests and demos can watch a course fill, queue and promote.

Other semesters (made through the API, by tests or by the soak script) get no
courses. Run alone, it first seeds the demo semesters if they are missing.
Re-running brings an existing demo course's code, credits, meetings and
prerequisites up to date, unless it has registrations (changing them would
break its registered students' rules).

    python -m scripts.seed_courses
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Engine, and_, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert

from app.courses.models import Course
from app.registrations.meeting_text import parse_meetings_text
from app.registrations.rules import schedule_text
from app.semesters.models import Semester
from scripts.seed_common import engine_from_settings
from scripts.seed_semesters import demo_semesters, seed_semesters


class DemoCourse(NamedTuple):
    code: str
    name: str
    professor: str
    credits: int
    meetings: str  # as in the CSV import: "MON 09:00-10:30;WED 09:00-10:30"
    prerequisites: tuple[str, ...]
    capacity: int
    reserve_limit: int


CATALOGUE = [
    DemoCourse("CS101", "Introduction to Computer Science", "Prof. Ada Lovelace", 4,
               "MON 09:00-10:30;WED 09:00-10:30", (), 120, 20),
    DemoCourse("CS201", "Data Structures and Algorithms", "Prof. Donald Knuth", 4,
               "TUE 10:30-12:00;THU 10:30-12:00", ("CS101",), 80, 15),
    DemoCourse("CS301", "Operating Systems", "Prof. Andrew Tanenbaum", 4,
               "MON 13:00-14:30;WED 13:00-14:30", ("CS201",), 60, 10),
    DemoCourse("CS310", "Database Systems", "Prof. Edgar Codd", 3,
               "TUE 13:00-14:30;THU 13:00-14:30", (), 60, 10),
    DemoCourse("CS320", "Computer Networks", "Prof. Radia Perlman", 3,
               "FRI 09:00-12:00", (), 50, 10),
    DemoCourse("MA101", "Linear Algebra", "Prof. Gilbert Strang", 3,
               "MON 08:00-09:00;WED 08:00-09:00;FRI 08:00-09:00", (), 100, 20),
    DemoCourse("MA201", "Probability and Statistics", "Prof. Florence Nightingale", 3,
               "TUE 08:30-10:00;THU 08:30-10:00", (), 90, 15),
    # Overlaps Operating Systems (MON/WED 14:00-14:30).
    DemoCourse("CS401", "Compilers", "Prof. Frances Allen", 3,
               "MON 14:00-15:30;WED 14:00-15:30", ("CS201",), 40, 10),
    # Overlaps Database Systems (TUE/THU 14:00-14:30).
    DemoCourse("CS410", "Distributed Systems", "Prof. Leslie Lamport", 3,
               "TUE 14:00-15:30;THU 14:00-15:30", (), 30, 10),
    # Small on purpose: races and reserve-list scenarios fill these within seconds.
    DemoCourse("CS450", "Cryptography Seminar", "Prof. Shafi Goldwasser", 2,
               "WED 17:00-19:00", (), 10, 5),
    DemoCourse("CS460", "Formal Methods Workshop", "Prof. Edsger Dijkstra", 2,
               "THU 17:00-19:00", (), 5, 5),
    # Overlaps Computer Networks (FRI 11:00-12:00).
    DemoCourse("CS470", "Quantum Computing Lab", "Prof. Grace Hopper", 1,
               "FRI 11:00-14:00", (), 3, 3),
]  # fmt: skip


def current_demo_semester_ids(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """The ids of the demo semesters as of now, seeding them when any is missing."""
    now = now or datetime.now(UTC)
    names = [row["name"] for row in demo_semesters(now)]
    with engine.connect() as connection:
        ids = connection.scalars(select(Semester.id).where(Semester.name.in_(names))).all()
    if len(ids) < len(names):
        ids = seed_semesters(engine, now=now)
    return sorted(ids)


def seed_courses(engine: Engine, *, semester_ids: Sequence[int] | None = None) -> int:
    """Add the catalogue to the demo semesters that lack it; return how many courses were inserted."""
    if semester_ids is None:
        semester_ids = current_demo_semester_ids(engine)
    rows = [demo_course_row(course, semester_id) for semester_id in semester_ids for course in CATALOGUE]
    if not rows:
        return 0
    statement = insert(Course).values(rows)
    new = statement.excluded
    upsert: ReturningInsert[tuple[bool]] = statement.on_conflict_do_update(
        index_elements=["semester_id", "course_name"],
        set_={
            "code": new.code,
            "credits": new.credits,
            "meetings": new.meetings,
            "schedule": new.schedule,
            "prerequisites": new.prerequisites,
        },
        # Only a course nobody registered for, and only when something differs.
        where=and_(
            Course.enrolled_count == 0,
            Course.reserved_count == 0,
            or_(
                Course.code != new.code,
                Course.credits != new.credits,
                Course.meetings != new.meetings,
                Course.schedule != new.schedule,
                Course.prerequisites != new.prerequisites,
            ),
        ),
    ).returning(literal_column("xmax = 0").label("inserted"))
    with engine.begin() as connection:
        return sum(1 for row in connection.execute(upsert) if row.inserted)


def demo_course_row(course: DemoCourse, semester_id: int) -> dict[str, object]:
    meetings = parse_meetings_text(course.meetings)
    return {
        "semester_id": semester_id,
        "code": course.code,
        "course_name": course.name,
        "professor": course.professor,
        "credits": course.credits,
        "meetings": meetings,
        "schedule": schedule_text(meetings),
        "prerequisites": list(course.prerequisites),
        "max_capacity": course.capacity,
        "reserve_limit": course.reserve_limit,
    }


def main() -> None:
    inserted = seed_courses(engine_from_settings())
    print(f"courses: {inserted} inserted")


if __name__ == "__main__":
    main()
