"""Check the registration invariants in the database, e.g. after a load test.

For every course: enrolled <= capacity, reserved <= reserve limit, reserve
positions exactly 1..k, the counters agree with the rows, and nobody is
reserved while a seat is free. For every student and semester: the credit
counter agrees with the registrations, and no two of them meet at the same
time. Every registration was within the credit limit in force then, and the
audit trail, replayed course by course, explains the registrations exactly
(see app/registrations/invariants.py).

    python -m scripts.check_invariants [--database-url URL] [--json]

The database: --database-url, else DATABASE_URL from the environment, else the
`make run` database when its embedded PostgreSQL is running (.data/postgres),
else DATABASE_URL from .env. Exit status: 0 all hold, 1 a violation, 2 the
database could not be read.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import get_settings, normalize_database_url
from app.registrations.invariants import audit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA_DIR = PROJECT_ROOT / ".data" / "postgres"
DEV_DATABASE = "course_registration"  # the database `make run` creates (scripts/run_dev.py)


def dev_database_url(data_dir: Path = DEV_DATA_DIR) -> str | None:
    """The URL of the `make run` database, if its embedded server is running.

    postmaster.pid names the server's process, port and socket folder.
    """
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # running, as another user (the embedded server runs as `embedded_postgres` under root)
    if not socket_dir or not (Path(socket_dir) / f".s.PGSQL.{port}").exists():
        return None
    return normalize_database_url(f"postgresql://postgres:@/{DEV_DATABASE}?host={socket_dir}&port={port}")


def resolve_database_url(explicit: str | None = None) -> tuple[str | None, str]:
    """The database to check, and where its URL came from."""
    if explicit:
        return normalize_database_url(explicit), "--database-url"
    if os.environ.get("DATABASE_URL"):
        return get_settings().database_url, "DATABASE_URL"
    if dev := dev_database_url():
        return dev, "the running `make run` database"
    if get_settings().database_url:
        return get_settings().database_url, "DATABASE_URL in .env"
    return None, "nowhere"


def describe(database_url: str) -> str:
    """Where the database is, without credentials: `course_registration on db:5432`."""
    url = make_url(database_url)
    port = url.port or url.query.get("port")
    where = url.host or url.query.get("host") or "localhost"
    return f"{url.database} on {where}{f':{port}' if port else ''}"


class ViolationRow(TypedDict):
    course_id: int | None
    student: str | None
    semester_id: int | None
    subject: str  # "course 12", "student STU10001, semester 3", ...
    problem: str


class Checked(TypedDict):
    """What run_check() found; --json prints it with where the database is."""

    status: Literal["ok", "violated"]
    courses_checked: int
    registrations_checked: int
    events_replayed: int
    violations: list[ViolationRow]


class CheckedIn(Checked):
    database: str | None
    source: str


class Unavailable(TypedDict):
    status: Literal["unavailable"]
    database: NotRequired[str | None]
    source: NotRequired[str]
    detail: str


def run_check(database_url: str) -> Checked:
    engine = create_engine(database_url, connect_args={"connect_timeout": 10})
    try:
        report = audit(engine)  # one snapshot: registrations may still be committing
    finally:
        engine.dispose()
    return {
        "status": "ok" if report.ok else "violated",
        "courses_checked": report.courses_checked,
        "registrations_checked": report.registrations_checked,
        "events_replayed": report.events_replayed,
        "violations": [
            {
                "course_id": v.course_id,
                "student": v.student,
                "semester_id": v.semester_id,
                "subject": v.subject,
                "problem": v.problem,
            }
            for v in report.violations
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="the database to check (default: see above)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)

    url, source = resolve_database_url(args.database_url)
    shown = describe(url) if url else None
    result: CheckedIn | Unavailable
    if url is None:
        result = {"status": "unavailable", "detail": "no database: pass --database-url or set DATABASE_URL"}
    else:
        try:
            result = {**run_check(url), "database": shown, "source": source}
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            result = {
                "status": "unavailable",
                "database": shown,
                "source": source,
                "detail": f"could not read {shown}: {reason}",
            }

    if args.json:
        print(json.dumps(result))
    elif result["status"] == "unavailable":
        print(f"invariants NOT CHECKED: {result['detail']}", file=sys.stderr)
    else:
        verdict = "hold" if result["status"] == "ok" else "BROKEN"
        print(
            f"invariants {verdict}: {result['courses_checked']} courses, "
            f"{result['registrations_checked']} registrations, {result['events_replayed']} events replayed "
            f"in {shown} (from {source})"
        )
        for violation in result["violations"]:
            print(f"  {violation['subject']}: {violation['problem']}")
    return {"ok": 0, "violated": 1}.get(result["status"], 2)


if __name__ == "__main__":
    sys.exit(main())
