"""Seed all demo data: students (with transcripts, holds and limits), semesters,
then courses (with codes, credits, meetings and prerequisites), and (outside
production) the development registrar. Idempotent. What the data holds, and which
students exercise which rule: the docstrings of scripts/seed_students.py and
scripts/seed_courses.py, and the README.

python -m scripts.seed [--count 1000]
"""

import argparse

from sqlalchemy import Engine

from app.core.config import get_settings
from scripts.seed_common import engine_from_settings
from scripts.seed_courses import seed_courses
from scripts.seed_semesters import seed_semesters
from scripts.seed_staff import seed_dev_registrar
from scripts.seed_students import seed_students


def seed_all(engine: Engine, *, count: int = 1000) -> None:
    inserted_students = seed_students(engine, count=count)
    past, current, future = seed_semesters(engine)
    inserted_courses = seed_courses(engine, semester_ids=[past, current, future])
    registrar = seed_dev_registrar(engine, environment=get_settings().environment)
    print(
        f"seeded: {inserted_students} new students (of {count}), semesters past={past} "
        f"open={current} future={future}, {inserted_courses} new courses, "
        f"development registrar {'created' if registrar else 'not created (exists, or production)'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # --students: the name this option had first; kept so existing commands still work.
    parser.add_argument(
        "--count", "--students", dest="count", type=int, default=1000, help="how many students (default 1000)"
    )
    args = parser.parse_args()
    seed_all(engine_from_settings(), count=args.count)


if __name__ == "__main__":
    main()
