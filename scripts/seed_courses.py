"""Seed a dozen courses in each demo semester (those seed_semesters makes). Idempotent.

Most courses are large; a few are small, with short reserve lists, so that load
tests and demos can watch a course fill, queue and promote. Other semesters
(made through the API, by tests or by the soak script) get no courses. Run
alone, it first seeds the demo semesters if they are missing.

    python -m scripts.seed_courses
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from app.courses.models import Course
from app.semesters.models import Semester
from scripts.seed_common import engine_from_settings
from scripts.seed_semesters import demo_semesters, seed_semesters

# (course name, professor, schedule, capacity, reserve limit)
CATALOGUE = [
    ("Introduction to Computer Science", "Prof. Ada Lovelace", "Mon/Wed 09:00-10:30", 120, 20),
    ("Data Structures and Algorithms", "Prof. Donald Knuth", "Tue/Thu 10:30-12:00", 80, 15),
    ("Operating Systems", "Prof. Andrew Tanenbaum", "Mon/Wed 13:00-14:30", 60, 10),
    ("Database Systems", "Prof. Edgar Codd", "Tue/Thu 13:00-14:30", 60, 10),
    ("Computer Networks", "Prof. Radia Perlman", "Fri 09:00-12:00", 50, 10),
    ("Linear Algebra", "Prof. Gilbert Strang", "Mon/Wed/Fri 08:00-09:00", 100, 20),
    ("Probability and Statistics", "Prof. Florence Nightingale", "Tue/Thu 08:30-10:00", 90, 15),
    ("Compilers", "Prof. Frances Allen", "Mon/Wed 15:00-16:30", 40, 10),
    ("Distributed Systems", "Prof. Leslie Lamport", "Tue/Thu 15:00-16:30", 30, 10),
    # Small on purpose: races and reserve-list scenarios fill these within seconds.
    ("Cryptography Seminar", "Prof. Shafi Goldwasser", "Wed 17:00-19:00", 10, 5),
    ("Formal Methods Workshop", "Prof. Edsger Dijkstra", "Thu 17:00-19:00", 5, 5),
    ("Quantum Computing Lab", "Prof. Grace Hopper", "Fri 14:00-17:00", 3, 3),
]


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
    rows = [
        {
            "semester_id": semester_id,
            "code": f"DEMO{number}",
            "course_name": name,
            "professor": professor,
            "schedule": schedule,
            "max_capacity": capacity,
            "reserve_limit": reserve_limit,
        }
        for semester_id in semester_ids
        for number, (name, professor, schedule, capacity, reserve_limit) in enumerate(CATALOGUE)
    ]
    if not rows:
        return 0
    with engine.begin() as connection:
        result = connection.execute(
            insert(Course)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["semester_id", "course_name"])
            .returning(Course.id)
        )
        return len(result.all())


def main() -> None:
    inserted = seed_courses(engine_from_settings())
    print(f"courses: {inserted} inserted")


if __name__ == "__main__":
    main()
