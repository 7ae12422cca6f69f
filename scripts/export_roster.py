"""Write a course's roster as CSV: the enrolled students, then the reserve list in position order.

    python -m scripts.export_roster --course ID [--output FILE] [--database-url URL]

Columns: student_number, name, status (ENROLLED or RESERVED), reserve_position
(empty for enrolled), registered_at (ISO 8601, UTC). Enrolled students are listed
in the order they registered. One statement, so the roster is one snapshot.
Without --output it goes to standard output. Exit status 2 when there is no such course.
"""

import argparse
import csv
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, text

from scripts.csv_files import add_database_option, engine_for

COLUMNS = ("student_number", "name", "status", "reserve_position", "registered_at")

_ROSTER = text(
    """
    SELECT c.id AS course_id, s.student_number, s.name, r.status::text AS status, r.reserve_position,
           r.created_at AS registered_at
    FROM courses c
    LEFT JOIN course_registrations r ON r.course_id = c.id
    LEFT JOIN students s ON s.id = r.student_id
    WHERE c.id = :course
    ORDER BY r.status = 'RESERVED', r.reserve_position, r.created_at, r.id
    """
)


class CourseNotFound(LookupError):
    pass


def roster_rows(connection: Connection, course_id: int) -> list[dict[str, Any]]:
    """The roster's rows, in order; CourseNotFound when the course does not exist."""
    rows = connection.execute(_ROSTER, {"course": course_id}).all()
    if not rows:
        raise CourseNotFound(course_id)
    return [
        {
            "student_number": row.student_number,
            "name": row.name,
            "status": row.status,
            "reserve_position": row.reserve_position if row.reserve_position is not None else "",
            "registered_at": row.registered_at.astimezone(UTC).isoformat(),
        }
        for row in rows
        if row.status is not None  # a course with nobody: the one row of the course itself
    ]


def write_roster(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", type=int, required=True, help="the course's id")
    parser.add_argument("--output", type=Path, help="the CSV file to write (default: standard output)")
    add_database_option(parser)
    args = parser.parse_args(argv)
    engine, _where = engine_for(args.database_url)
    try:
        with engine.connect() as connection:
            rows = roster_rows(connection, args.course)
    except CourseNotFound:
        print(f"there is no course {args.course}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.output is None:
        write_roster(rows, sys.stdout)
    else:
        with args.output.open("w", newline="", encoding="utf-8") as out:
            write_roster(rows, out)
        enrolled = sum(row["status"] == "ENROLLED" for row in rows)
        print(f"roster of course {args.course}: {enrolled} enrolled, {len(rows) - enrolled} reserved -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
