"""Seed three semesters: one whose registration is open now, one past, one future. Idempotent.

Names follow the academic calendar around today; running the script again
re-centres the open semester's window on now, so a demo never finds it closed.

    python -m scripts.seed_semesters
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from app.semesters.models import Semester
from scripts.seed_common import engine_from_settings


def _term_name(moment: datetime) -> str:
    season = "Spring" if moment.month <= 5 else "Summer" if moment.month <= 8 else "Fall"
    return f"{season} {moment.year}"


def demo_semesters(now: datetime) -> list[dict]:
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
    """Upsert the three demo semesters; return their ids (past, open, future)."""
    rows = demo_semesters(now or datetime.now(UTC))
    statement = insert(Semester).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "registration_start": statement.excluded.registration_start,
            "registration_end": statement.excluded.registration_end,
        },
    ).returning(Semester.id, Semester.name)
    with engine.begin() as connection:
        ids_by_name = {row.name: row.id for row in connection.execute(statement)}
    return [ids_by_name[row["name"]] for row in rows]


def main() -> None:
    ids = seed_semesters(engine_from_settings())
    print(f"semesters: past={ids[0]} open={ids[1]} future={ids[2]}")


if __name__ == "__main__":
    main()
