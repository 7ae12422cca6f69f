"""Seed demo students STU10000, STU10001, ... with password `test123`. Idempotent.

python -m scripts.seed_students --count 1000
"""

import argparse

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert
from tqdm import tqdm

from app.core.config import get_settings
from app.core.security import hash_password
from app.students.models import Student
from scripts.seed_common import engine_from_settings

DEMO_PASSWORD = "test123"
FIRST_NUMBER = 10000
BATCH_SIZE = 1000

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
    "Shafi",
    "Leslie",
    "Hedy",
    "Dennis",
    "Karen",
    "Ken",
    "Sophie",
    "Linus",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Goldwasser",
    "Lamport",
    "Lamarr",
    "Ritchie",
    "Jones",
    "Thompson",
    "Wilson",
    "Torvalds",
]


def student_number(index: int) -> str:
    return f"STU{FIRST_NUMBER + index}"


def seed_students(engine: Engine, *, count: int = 1000, rounds: int | None = None) -> int:
    """Insert the students that do not exist yet; return how many were inserted.

    Every demo student has the same password, so one bcrypt hash (with its salt)
    serves them all: 1,000 students take well under a second instead of minutes.
    """
    password_hash = hash_password(DEMO_PASSWORD, rounds=rounds or get_settings().bcrypt_rounds)
    inserted = 0
    with engine.begin() as connection, tqdm(total=count, unit="student", disable=count <= BATCH_SIZE) as bar:
        for start in range(0, count, BATCH_SIZE):
            rows = [
                {
                    "student_number": student_number(index),
                    "password_hash": password_hash,
                    "name": f"{FIRST_NAMES[index % 20]} {LAST_NAMES[(index // 20) % 20]}",
                }
                for index in range(start, min(start + BATCH_SIZE, count))
            ]
            result = connection.execute(
                insert(Student).on_conflict_do_nothing(index_elements=["student_number"]).returning(Student.id),
                rows,
            )
            inserted += len(result.all())
            bar.update(len(rows))
    return inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="how many students (default 1000)")
    args = parser.parse_args()
    inserted = seed_students(engine_from_settings(), count=args.count)
    print(f"students: {inserted} inserted, {args.count - inserted} already there")


if __name__ == "__main__":
    main()
