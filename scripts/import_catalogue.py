"""Import a semester's catalogue from CSV: upsert courses by code. The whole file or nothing.

    python -m scripts.import_catalogue FILE.csv --semester ID [--database-url URL]

Columns (a header row; any order): code, course_name, professor, credits,
max_capacity (required); meetings (`MON 09:00-10:30;WED 09:00-10:30`, empty for
none), prerequisites (`CS101;CS201`), reserve_limit (default 10). Example:
docs/examples/catalogue.csv.

A course whose code is new in the semester is added; an existing one is updated
to the file's values; re-running the same file changes nothing. Every row is
checked before anything is written, and every bad row is reported with its line
number and reason (exit status 1, nothing written). Refused on purpose, because
registered students' rules would break under them:

- changing the credits or meetings of a course that has registrations;
- a max_capacity below the enrolled count, or a reserve_limit below the reserved
  count (nobody is ever removed by an edit);
- raising max_capacity while students wait on the reserve list: the admin API
  (`PATCH /admin/courses/{id}`) does that, promoting them in the same transaction.

The courses it updates are locked (`FOR UPDATE`, ascending id, the lock order of
docs/architecture.md) from the check to the commit, so no registration slips in between.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, literal_column, or_, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert
from tqdm import tqdm

from app.courses.models import Course
from app.registrations.meeting_text import parse_meetings_text
from app.registrations.rules import schedule_text
from scripts.csv_files import (
    CODE,
    BadFile,
    Cells,
    Problem,
    add_database_option,
    batches,
    engine_for,
    read_table,
    report,
)

REQUIRED = ("code", "course_name", "professor", "credits", "max_capacity")
OPTIONAL = ("meetings", "prerequisites", "reserve_limit")
DEFAULT_RESERVE_LIMIT = 10


@dataclass(frozen=True)
class CourseRow:
    line: int
    code: str
    course_name: str
    professor: str
    credits: int
    meetings: list[dict[str, str]]
    prerequisites: list[str]
    max_capacity: int
    reserve_limit: int

    def values(self, semester_id: int) -> dict[str, Any]:
        return {
            "semester_id": semester_id,
            "code": self.code,
            "course_name": self.course_name,
            "professor": self.professor,
            "credits": self.credits,
            "meetings": self.meetings,
            "schedule": schedule_text(self.meetings) or "TBA",
            "prerequisites": self.prerequisites,
            "max_capacity": self.max_capacity,
            "reserve_limit": self.reserve_limit,
        }


@dataclass(frozen=True)
class Imported:
    inserted: int
    updated: int
    unchanged: int


def parse_catalogue(path: Path) -> list[CourseRow]:
    """Every row of the file, checked on its own and against the others; BadFile lists every problem."""
    table = read_table(path, required=REQUIRED, optional=OPTIONAL)
    problems: list[Problem] = list(table.problems)
    courses: list[CourseRow] = []
    first_line: dict[tuple[str, str], int] = {}
    for line, values in table.rows:
        cells = Cells(line, values)
        code = cells.text("code", max_length=20)
        if code and len(code) <= 20 and not CODE.match(code):
            cells.reasons.append(f"code {code!r} is not a course code (letters, digits, '_', '.', '-')")
        name = cells.text("course_name", max_length=200)
        professor = cells.text("professor", max_length=200)
        credits = cells.integer("credits", low=0, high=12)
        capacity = cells.integer("max_capacity", low=0)
        reserve_limit = cells.integer("reserve_limit", low=0, default=DEFAULT_RESERVE_LIMIT)
        meetings: list[dict[str, str]] = []
        try:
            meetings = parse_meetings_text(values.get("meetings", ""))
        except ValueError as error:
            cells.reasons.append(f"meetings: {error}")
        prerequisites = cells.codes("prerequisites")
        if code and code in prerequisites:
            cells.reasons.append(f"{code} cannot be its own prerequisite")
        for kind, value in (("code", code), ("course_name", name)):
            if value and (kind, value) in first_line:
                cells.reasons.append(f"{kind} {value!r} is already on line {first_line[(kind, value)]}")
            elif value:
                first_line[(kind, value)] = line
        problems += cells.problems()
        if not cells.reasons and credits is not None and capacity is not None and reserve_limit is not None:
            courses.append(
                CourseRow(line, code, name, professor, credits, meetings, prerequisites, capacity, reserve_limit)
            )
    if problems:
        raise BadFile(problems)
    return courses


_LOCK_EXISTING = text(
    """
    SELECT id, code, course_name, credits, meetings, max_capacity, reserve_limit, enrolled_count, reserved_count
    FROM courses WHERE semester_id = :semester AND code IN :codes
    ORDER BY id
    FOR UPDATE
    """
).bindparams(bindparam("codes", expanding=True))

_NAMES = text("SELECT code, course_name FROM courses WHERE semester_id = :semester")


def check_against_database(connection: Connection, semester_id: int, courses: list[CourseRow]) -> None:
    """What only the database can tell: the rules of courses that have registrations,
    and names that another course of the semester already has. Locks the courses
    the file updates (ascending id) until the transaction ends."""
    existing = {
        row.code: row
        for row in connection.execute(_LOCK_EXISTING, {"semester": semester_id, "codes": [c.code for c in courses]})
    }
    problems: list[Problem] = []
    for course in courses:
        old = existing.get(course.code)
        if old is None:
            continue
        registered = old.enrolled_count + old.reserved_count

        def refuse(reason: str, course: CourseRow = course) -> None:
            problems.append(Problem(course.line, f"{course.code}: {reason}"))

        if registered and course.credits != old.credits:
            refuse(
                f"has {registered} registrations: its credits cannot change from {old.credits} to {course.credits} "
                "(registered students' credit totals would break)"
            )
        if registered and course.meetings != old.meetings:
            refuse(
                f"has {registered} registrations: its meetings cannot change "
                "(registered students' timetables would break)"
            )
        if course.max_capacity < old.enrolled_count:
            refuse(f"max_capacity {course.max_capacity} is below the {old.enrolled_count} enrolled")
        elif course.max_capacity > old.max_capacity and old.reserved_count:
            refuse(
                f"raising max_capacity while {old.reserved_count} students wait on the reserve list "
                "must promote them: use the admin API (PATCH /admin/courses/{id})"
            )
        if course.reserve_limit < old.reserved_count:
            refuse(f"reserve_limit {course.reserve_limit} is below the {old.reserved_count} reserved")
    # Names stay unique in the semester once the file is in.
    file_codes = {course.code for course in courses}
    kept = {row.course_name: row.code for row in connection.execute(_NAMES, {"semester": semester_id})}
    for course in courses:
        holder = kept.get(course.course_name)
        if holder is not None and holder not in file_codes:
            problems.append(
                Problem(course.line, f"course_name {course.course_name!r} belongs to course {holder} of the semester")
            )
    if problems:
        raise BadFile(problems)


def import_catalogue(engine: Engine, path: Path, *, semester_id: int, progress: bool = True) -> Imported:
    """Check the whole file, then upsert it in one transaction; BadFile (nothing written) on any problem."""
    courses = parse_catalogue(path)
    with engine.begin() as connection:
        if connection.scalar(text("SELECT id FROM semesters WHERE id = :id"), {"id": semester_id}) is None:
            raise BadFile([Problem(0, f"there is no semester {semester_id}")])
        if not courses:
            return Imported(0, 0, 0)
        check_against_database(connection, semester_id, courses)
        inserted = updated = 0
        rows = [course.values(semester_id) for course in courses]
        with tqdm(total=len(rows), unit="course", disable=not progress or None, file=sys.stderr) as bar:
            for batch in batches(rows):
                statement = insert(Course).values(list(batch))
                new = statement.excluded
                columns = ("course_name", "professor", "credits", "meetings", "schedule", "prerequisites")
                changed = [getattr(Course, c) != getattr(new, c) for c in (*columns, "max_capacity", "reserve_limit")]
                upsert: ReturningInsert[tuple[bool]] = statement.on_conflict_do_update(
                    index_elements=["semester_id", "code"],
                    set_={
                        **{column: getattr(new, column) for column in columns},
                        "max_capacity": new.max_capacity,
                        "reserve_limit": new.reserve_limit,
                        "updated_at": literal_column("now()"),
                    },
                    where=or_(*changed),
                ).returning(literal_column("xmax = 0").label("inserted"))
                for row in connection.execute(upsert):
                    inserted += row.inserted
                    updated += not row.inserted
                bar.update(len(batch))
    return Imported(inserted, updated, len(courses) - inserted - updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the CSV file")
    parser.add_argument("--semester", type=int, required=True, help="the semester's id")
    add_database_option(parser)
    args = parser.parse_args(argv)
    engine, where = engine_for(args.database_url)
    try:
        result = import_catalogue(engine, args.file, semester_id=args.semester)
    except BadFile as bad:
        report(args.file, bad.problems)
        return 1
    finally:
        engine.dispose()
    print(
        f"catalogue of semester {args.semester} in {where}: {result.inserted} added, "
        f"{result.updated} updated, {result.unchanged} unchanged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
