"""Seed a dozen courses in every semester. Idempotent.

Most courses are large; a few are small, with short reserve lists, so that load
tests and demos can watch a course fill, queue and promote.

    python -m scripts.seed_courses
"""

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from app.courses.models import Course
from app.semesters.models import Semester
from scripts.seed_common import engine_from_settings

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


def seed_courses(engine: Engine) -> int:
    """Add the catalogue to every semester that lacks it; return how many courses were inserted."""
    with engine.begin() as connection:
        semester_ids = connection.scalars(select(Semester.id).order_by(Semester.id)).all()
        rows = [
            {
                "semester_id": semester_id,
                "course_name": name,
                "professor": professor,
                "schedule": schedule,
                "max_capacity": capacity,
                "reserve_limit": reserve_limit,
            }
            for semester_id in semester_ids
            for name, professor, schedule, capacity, reserve_limit in CATALOGUE
        ]
        if not rows:
            return 0
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
