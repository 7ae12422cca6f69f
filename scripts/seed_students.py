"""Seed demo students STU10000, STU10001, ... with password `test123`. Idempotent.

What they bring to the registration rules (issue 12):
- transcripts: every student with an even number has completed CS101 (half of
  them), every fourth student (STU10000, STU10004, ...) also CS201;
- holds: STU10013, STU10042, STU10404, STU10666 and STU10999 (when seeded) have
  an active hold, so they cannot register (dropping still works);
- credit limits: STU10007, STU10057, STU10107, ... (every 50th from 7) are
  part-time with max_credits 9; everyone else has the default (18);
- appointments: none, so registration opens for everyone with the semester;
  `--stagger-appointments GROUPS --every MINUTES` gives the open demo semester
  (or --semester) appointments in GROUPS groups of consecutive student numbers,
  MINUTES apart, as a registrar staggers a rush; `--clear-appointments` removes them.

python -m scripts.seed_students --count 1000
python -m scripts.seed_students --stagger-appointments 4 --every 30 [--start now] [--semester ID]
"""

import argparse
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from tqdm import tqdm

from app.core.config import get_settings
from app.core.security import hash_password
from app.semesters.models import Semester
from app.students.models import CompletedCourse, Student, StudentTerm
from scripts.seed_common import engine_from_settings
from scripts.seed_semesters import demo_semesters

DEMO_PASSWORD = "test123"
FIRST_NUMBER = 10000
BATCH_SIZE = 1000
# Indexes (student number - FIRST_NUMBER) of the students with an active hold.
HOLD_INDEXES = (13, 42, 404, 666, 999)
HOLD_REASON = "Unpaid tuition (demo hold)"
SEED_ACTOR = "seed"
PART_TIME_MAX_CREDITS = 9


def completed_courses(index: int) -> tuple[str, ...]:
    """The demo transcript: half have completed CS101, a quarter CS201 as well."""
    if index % 4 == 0:
        return ("CS101", "CS201")
    if index % 2 == 0:
        return ("CS101",)
    return ()


def max_credits(index: int) -> int | None:
    return PART_TIME_MAX_CREDITS if index % 50 == 7 else None


# A hold and its HOLD_PLACED event, once per student: a hold the seed placed
# before (even if a registrar has lifted it since) is not placed again.
_PLACE_HOLDS = text(
    """
    WITH held AS (
        INSERT INTO student_holds (student_id, reason, placed_by)
        SELECT s.id, :reason, :actor FROM students s
        WHERE s.student_number IN :numbers
          AND NOT EXISTS (SELECT FROM student_holds h WHERE h.student_id = s.id AND h.placed_by = :actor)
        RETURNING id, student_id, reason
    )
    INSERT INTO registration_events (event_type, student_id, actor, details)
    SELECT 'HOLD_PLACED', student_id, 'system', jsonb_build_object('hold_id', id, 'reason', reason) FROM held
    RETURNING student_id
    """
).bindparams(bindparam("numbers", expanding=True))

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
    """Insert the students that do not exist yet, with their transcripts and holds;
    return how many students were inserted. Transcripts and holds are filled in for
    existing demo students too (a database seeded before they existed).

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
                    "max_credits": max_credits(index),
                }
                for index in range(start, min(start + BATCH_SIZE, count))
            ]
            result = connection.execute(
                insert(Student).on_conflict_do_nothing(index_elements=["student_number"]).returning(Student.id),
                rows,
            )
            inserted += len(result.all())
            numbers = [row["student_number"] for row in rows]
            found = select(Student.student_number, Student.id).where(Student.student_number.in_(numbers))
            ids = {row.student_number: row.id for row in connection.execute(found)}
            transcript = [
                {"student_id": ids[student_number(index)], "course_code": code}
                for index in range(start, min(start + BATCH_SIZE, count))
                for code in completed_courses(index)
            ]
            if transcript:
                connection.execute(insert(CompletedCourse).on_conflict_do_nothing(), transcript)
            bar.update(len(rows))
        held = [student_number(index) for index in HOLD_INDEXES if index < count]
        if held:
            connection.execute(_PLACE_HOLDS, {"numbers": held, "reason": HOLD_REASON, "actor": SEED_ACTOR})
    return inserted


def open_demo_semester_id(engine: Engine, *, now: datetime | None = None) -> int | None:
    """The demo semester whose registration is open now (scripts/seed_semesters.py)."""
    now = now or datetime.now(UTC)
    names = [row["name"] for row in demo_semesters(now)]
    with engine.connect() as connection:
        return connection.scalar(
            select(Semester.id).where(
                Semester.name.in_(names), Semester.registration_start <= now, Semester.registration_end > now
            )
        )


def stagger_appointments(
    engine: Engine,
    *,
    semester_id: int,
    groups: int,
    every: timedelta,
    start: datetime | None = None,
    count: int | None = None,
) -> list[datetime]:
    """Give the demo students (the first `count`, default all) appointments in the
    semester: `groups` groups of consecutive student numbers, the first opening
    at `start` (default the semester's registration start), each next one `every`
    later. Returns each group's opening. Re-running replaces the appointments;
    the students' credit counters are left alone."""
    if groups < 1:
        raise ValueError("at least one group")
    with engine.begin() as connection:
        registration_start = connection.scalar(select(Semester.registration_start).where(Semester.id == semester_id))
        if registration_start is None:
            raise ValueError(f"no semester {semester_id}")
        first = start or registration_start
        students = (
            connection.execute(
                select(Student.id)
                .where(Student.student_number.regexp_match(r"^STU[0-9]+$"))
                .order_by(Student.student_number)
                .limit(count)
            )
            .scalars()
            .all()
        )
        opens = [first + every * group for group in range(groups)]
        rows = [
            {
                "student_id": student_id,
                "semester_id": semester_id,
                "registration_opens_at": opens[position * groups // len(students)],
            }
            for position, student_id in enumerate(students)
        ]
        for batch in range(0, len(rows), BATCH_SIZE):
            statement = insert(StudentTerm).values(rows[batch : batch + BATCH_SIZE])
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["student_id", "semester_id"],
                    set_={"registration_opens_at": statement.excluded.registration_opens_at},
                )
            )
    return opens


def clear_appointments(engine: Engine, *, semester_id: int) -> int:
    """Registration opens with the semester again for every student; returns how many had an appointment."""
    with engine.begin() as connection:
        result = connection.execute(
            update(StudentTerm)
            .where(StudentTerm.semester_id == semester_id, StudentTerm.registration_opens_at.is_not(None))
            .values(registration_opens_at=None)
        )
        return result.rowcount


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--count", type=int, help="how many students (default 1000; with --stagger-appointments, default all)"
    )
    parser.add_argument(
        "--stagger-appointments",
        type=int,
        metavar="GROUPS",
        help="give the students appointments in GROUPS groups of consecutive numbers (then seed nothing else)",
    )
    parser.add_argument("--every", type=float, default=30.0, metavar="MINUTES", help="minutes between groups (30)")
    parser.add_argument(
        "--start",
        help="when the first group opens: an ISO date-time or 'now' (default: the semester's registration start)",
    )
    parser.add_argument("--semester", type=int, help="the semester (default: the demo semester open now)")
    parser.add_argument("--clear-appointments", action="store_true", help="remove every appointment in the semester")
    args = parser.parse_args(argv)
    engine = engine_from_settings()
    if args.stagger_appointments is None and not args.clear_appointments:
        count = args.count or 1000
        inserted = seed_students(engine, count=count)
        print(f"students: {inserted} inserted, {count - inserted} already there")
        return 0
    semester_id = args.semester or open_demo_semester_id(engine)
    if semester_id is None:
        print("no demo semester is open: seed it first (python -m scripts.seed), or pass --semester", file=sys.stderr)
        return 2
    if args.clear_appointments:
        print(f"appointments: {clear_appointments(engine, semester_id=semester_id)} cleared in semester {semester_id}")
        return 0
    start = None
    if args.start:
        start = datetime.now(UTC) if args.start == "now" else datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    try:
        opens = stagger_appointments(
            engine,
            semester_id=semester_id,
            groups=args.stagger_appointments,
            every=timedelta(minutes=args.every),
            start=start,
            count=args.count,
        )
    except ValueError as error:
        print(f"cannot stagger appointments: {error}", file=sys.stderr)
        return 2
    print(f"appointments in semester {semester_id}: {len(opens)} groups, opening at")
    for group, moment in enumerate(opens, start=1):
        print(f"  group {group}: {moment.isoformat(timespec='minutes')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
