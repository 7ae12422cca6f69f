"""Seed three semesters: one whose registration is open now, one past, one future. Idempotent.

Names follow the academic calendar around today ("Fall 2026"); running the
script again re-centres the open semester's window on now, so a demo never finds
it closed. Re-runs converge: when the calendar has moved on (the open semester
is now named for the next term), the demo semesters of earlier runs that are
still open or yet to open are closed, so exactly one demo semester is open.
Semesters named otherwise are never touched.

    python -m scripts.seed_semesters
"""

from datetime import UTC, datetime, timedelta
from typing import TypedDict

from sqlalchemy import Engine, func, update
from sqlalchemy.dialects.postgresql import insert

from app.semesters.models import Semester
from scripts.seed_common import engine_from_settings

# What _term_name produces; how the demo semesters of earlier runs are recognised.
DEMO_NAME_PATTERN = r"^(Spring|Summer|Fall) [0-9]{4}$"
# A closed-early demo semester keeps at least this much window before its end.
CLOSED_WINDOW = timedelta(days=30)


def _term_name(moment: datetime) -> str:
    season = "Spring" if moment.month <= 5 else "Summer" if moment.month <= 8 else "Fall"
    return f"{season} {moment.year}"


class DemoSemester(TypedDict):
    """One row of the semesters table, as the seed writes it."""

    name: str
    registration_start: datetime
    registration_end: datetime


def demo_semesters(now: datetime) -> list[DemoSemester]:
    """Registration windows relative to now; each semester named for the term it opens.

    The windows start 200 days apart, longer than any season, so the names never collide.
    """
    windows = [
        (now - timedelta(days=200), now - timedelta(days=170)),  # past
        (now - timedelta(days=1), now + timedelta(days=30)),  # open now
        (now + timedelta(days=200), now + timedelta(days=230)),  # future
    ]
    return [
        {"name": _term_name(start + timedelta(days=45)), "registration_start": start, "registration_end": end}
        for start, end in windows
    ]


def seed_semesters(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """Upsert the three demo semesters and close stale ones; return the ids (past, open, future)."""
    now = now or datetime.now(UTC)
    rows = demo_semesters(now)
    names = [row["name"] for row in rows]

    # Demo semesters of earlier runs that are no longer one of the three: end their
    # window now (the rows and their registrations stay, as last term's history).
    close_stale = (
        update(Semester)
        .where(
            Semester.name.regexp_match(DEMO_NAME_PATTERN),
            Semester.name.not_in(names),
            Semester.registration_end > now,
        )
        .values(
            registration_start=func.least(Semester.registration_start, now - CLOSED_WINDOW),
            registration_end=now,
            updated_at=func.now(),
        )
    )
    insert_rows = insert(Semester).values(rows)
    upsert = insert_rows.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "registration_start": insert_rows.excluded.registration_start,
            "registration_end": insert_rows.excluded.registration_end,
            "updated_at": func.now(),
        },
    ).returning(Semester.id, Semester.name)
    with engine.begin() as connection:
        connection.execute(close_stale)
        ids_by_name = {row.name: row.id for row in connection.execute(upsert)}
    return [ids_by_name[name] for name in names]


def main() -> None:
    ids = seed_semesters(engine_from_settings())
    print(f"semesters: past={ids[0]} open={ids[1]} future={ids[2]}")


if __name__ == "__main__":
    main()
