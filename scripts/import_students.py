"""Import students from CSV: upsert by student number. The whole file or nothing.

    python -m scripts.import_students FILE.csv [--reset-passwords] [--database-url URL]

Columns (a header row; any order): student_number, name (required); password or
password_hash (a bcrypt hash, `$2b$...`), one of them per row; max_credits
(optional, 0-60, empty for the DEFAULT_MAX_CREDITS setting); completed_courses
(optional, `CS101;MA101`). Example: docs/examples/students.csv.

A new student number is added. An existing student gets the file's name, and its
max_credits when the file has that column; its password changes only to a
different password_hash, or with --reset-passwords (a plain password is hashed
with a new salt each time, so without that flag it is used for new students only,
and re-running the same file changes nothing). Completed courses are added,
never removed. Every row is checked before anything is written, and every bad
row is reported with its line number and reason (exit status 1, nothing written).

Speed: one bcrypt hash per distinct plain password (BCRYPT_ROUNDS, about 0.2 s
each at 12, on as many threads as cores), never per student; rows go in batches
of 1,000. 10,000 students sharing a few initial passwords, or given as
password_hash, import in seconds.

Locks: the existing students in the file, `FOR NO KEY UPDATE` in ascending id,
like every change to what the registration rules read about a student.
"""

import argparse
import os
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, text, update
from sqlalchemy.dialects.postgresql import insert
from tqdm import tqdm

from app.core.config import get_settings
from app.core.security import hash_password
from app.students.models import CompletedCourse, Student
from scripts.csv_files import (
    BadFile,
    Cells,
    Problem,
    add_database_option,
    batches,
    engine_for,
    read_table,
    report,
)

REQUIRED = ("student_number", "name")
OPTIONAL = ("password", "password_hash", "max_credits", "completed_courses")
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
STUDENT_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class StudentRow:
    line: int
    student_number: str
    name: str
    password: str | None
    password_hash: str | None
    max_credits: int | None
    completed_courses: list[str]


@dataclass(frozen=True)
class Imported:
    inserted: int
    updated: int
    unchanged: int
    completed_added: int
    hashes_computed: int


def parse_students(path: Path) -> tuple[list[StudentRow], set[str]]:
    """Every row, checked; BadFile lists every problem. Also returns the file's columns."""
    table = read_table(path, required=REQUIRED, optional=OPTIONAL)
    columns = set(table.columns)
    if not columns & {"password", "password_hash"}:
        raise BadFile([Problem(1, "missing column 'password' or 'password_hash'")])
    problems: list[Problem] = list(table.problems)
    students: list[StudentRow] = []
    first_line: dict[str, int] = {}
    for line, values in table.rows:
        cells = Cells(line, values)
        number = cells.text("student_number", max_length=32)
        if number and len(number) <= 32 and not STUDENT_NUMBER.match(number):
            cells.reasons.append(f"student_number {number!r} has characters other than letters, digits, '_.-'")
        if number in first_line:
            cells.reasons.append(f"student_number {number!r} is already on line {first_line[number]}")
        elif number:
            first_line[number] = line
        name = cells.text("name", max_length=200)
        password = values.get("password") or None
        password_hash = values.get("password_hash") or None
        if password and password_hash:
            cells.reasons.append("give a password or a password_hash, not both")
        elif not password and not password_hash:
            cells.reasons.append("no password and no password_hash")
        elif password and len(password.encode()) > 72:
            cells.reasons.append("password is longer than 72 bytes (bcrypt's limit)")
        elif password_hash and not BCRYPT_HASH.match(password_hash):
            cells.reasons.append("password_hash is not a bcrypt hash ($2b$12$ and 53 characters)")
        max_credits = cells.integer("max_credits", low=0, high=60, default=None) if values.get("max_credits") else None
        completed = cells.codes("completed_courses")
        problems += cells.problems()
        if not cells.reasons:
            students.append(StudentRow(line, number, name, password, password_hash, max_credits, completed))
    if problems:
        raise BadFile(problems)
    return students, columns


_LOCK_EXISTING = text(
    """
    SELECT id, student_number, name, password_hash, max_credits FROM students
    WHERE student_number IN :numbers
    ORDER BY id
    FOR NO KEY UPDATE
    """
).bindparams(bindparam("numbers", expanding=True))


def hash_passwords(passwords: set[str], *, rounds: int, progress: bool) -> dict[str, str]:
    """One bcrypt hash per distinct password, on as many threads as cores (bcrypt releases the GIL)."""
    ordered = sorted(passwords)
    with (
        ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool,
        tqdm(total=len(ordered), unit="hash", disable=not progress or None, file=sys.stderr) as bar,
    ):
        hashes = {}
        for password, hashed in zip(ordered, pool.map(lambda p: hash_password(p, rounds=rounds), ordered), strict=True):
            hashes[password] = hashed
            bar.update()
    return hashes


def import_students(
    engine: Engine, path: Path, *, reset_passwords: bool = False, rounds: int | None = None, progress: bool = True
) -> Imported:
    """Check the whole file, then upsert it in one transaction; BadFile (nothing written) on any problem."""
    students, columns = parse_students(path)
    rounds = rounds or get_settings().bcrypt_rounds
    with engine.begin() as connection:
        existing = {
            row.student_number: row
            for batch in batches([{"n": s.student_number} for s in students], 10_000)
            for row in connection.execute(_LOCK_EXISTING, {"numbers": [r["n"] for r in batch]})
        }
        needs_hash = {
            s.password for s in students if s.password and (s.student_number not in existing or reset_passwords)
        }
        hashes = hash_passwords(needs_hash, rounds=rounds, progress=progress) if needs_hash else {}

        new_rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for s in students:
            old = existing.get(s.student_number)
            wanted_hash = s.password_hash or (hashes.get(s.password) if s.password else None)
            if old is None:
                new_rows.append(
                    {
                        "student_number": s.student_number,
                        "name": s.name,
                        "password_hash": wanted_hash,
                        "max_credits": s.max_credits,
                    }
                )
                continue
            change = {
                "id": old.id,
                "name": s.name,
                "password_hash": wanted_hash or old.password_hash,
                "max_credits": s.max_credits if "max_credits" in columns else old.max_credits,
            }
            if (change["name"], change["password_hash"], change["max_credits"]) != (
                old.name,
                old.password_hash,
                old.max_credits,
            ):
                changes.append(change)

        ids: dict[str, uuid.UUID] = {number: row.id for number, row in existing.items()}
        with tqdm(total=len(students), unit="student", disable=not progress or None, file=sys.stderr) as bar:
            for batch in batches(new_rows):
                result = connection.execute(insert(Student).returning(Student.student_number, Student.id), batch)
                ids.update({row.student_number: row.id for row in result})
                bar.update(len(batch))
            for batch in batches(changes):
                _update(connection, batch)
                bar.update(len(batch))
            bar.update(len(students) - len(new_rows) - len(changes))
        completed = [
            {"student_id": ids[s.student_number], "course_code": code} for s in students for code in s.completed_courses
        ]
        added = 0
        for batch in batches(completed):
            result = connection.execute(
                insert(CompletedCourse).on_conflict_do_nothing().returning(CompletedCourse.course_code), batch
            )
            added += len(result.all())
    unchanged = len(students) - len(new_rows) - len(changes)
    return Imported(len(new_rows), len(changes), unchanged, added, len(hashes))


def _update(connection: Connection, batch: Any) -> None:
    """One UPDATE per student, sent as a batch (executemany)."""
    connection.execute(
        update(Student)
        .where(Student.id == bindparam("student_id"))
        .values(
            name=bindparam("new_name"),
            password_hash=bindparam("new_hash"),
            max_credits=bindparam("new_max_credits"),
            updated_at=func.now(),
        ),
        [
            {
                "student_id": row["id"],
                "new_name": row["name"],
                "new_hash": row["password_hash"],
                "new_max_credits": row["max_credits"],
            }
            for row in batch
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the CSV file")
    parser.add_argument(
        "--reset-passwords", action="store_true", help="set existing students' passwords from the password column"
    )
    add_database_option(parser)
    args = parser.parse_args(argv)
    engine, where = engine_for(args.database_url)
    try:
        result = import_students(engine, args.file, reset_passwords=args.reset_passwords)
    except BadFile as bad:
        report(args.file, bad.problems)
        return 1
    finally:
        engine.dispose()
    print(
        f"students in {where}: {result.inserted} added, {result.updated} updated, {result.unchanged} unchanged; "
        f"{result.completed_added} completed courses added; {result.hashes_computed} password hashes computed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
