"""Seed scripts: each runnable alone and idempotent, fast, converging when re-run
on later days, and producing data a student can use at once.

Every test seeds a fresh database of its own: demo semesters are named for the
calendar, and the other tests' rows must not change what a seed run finds.
"""

import os
import re
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.courses.models import Course
from app.main import create_app
from app.semesters.models import Semester
from app.students.models import Student
from scripts import migrate
from scripts.seed_courses import CATALOGUE, seed_courses
from scripts.seed_semesters import demo_semesters, seed_semesters
from tests.support.environment import PROJECT_ROOT, TEST_ENV


@pytest.fixture
def seed_url(create_database):
    url = create_database(f"course_reg_seed_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    return url


@pytest.fixture
def seed_engine(seed_url):
    engine = create_engine(seed_url)
    yield engine
    engine.dispose()


def run_seed(url: str, module: str, *args: str) -> str:
    """Run a seed script as an operator would: its own process, the URL from the environment."""
    completed = subprocess.run(
        [sys.executable, "-m", f"scripts.{module}", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **TEST_ENV, "DATABASE_URL": url},
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _count(engine, model, *where):
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _semesters(engine):
    with Session(engine) as session:
        return {s.name: s for s in session.scalars(select(Semester))}


def _open_at(semesters, moment):
    return sorted(name for name, s in semesters.items() if s.registration_start <= moment < s.registration_end)


def _courses_per_semester(engine):
    with Session(engine) as session:
        return dict(session.execute(select(Course.semester_id, func.count()).group_by(Course.semester_id)).all())


@pytest.mark.slow  # a subprocess of its own
def test_seed_all_is_idempotent_and_logs_in_the_demo_student(seed_url, seed_engine):
    first = run_seed(seed_url, "seed", "--count", "50")
    again = run_seed(seed_url, "seed", "--count", "50")
    assert "50 new students" in first
    assert "0 new students" in again
    assert "0 new courses" in again
    names = [semester["name"] for semester in demo_semesters(datetime.now(UTC))]
    assert _count(seed_engine, Student) == 50
    assert set(_semesters(seed_engine)) == set(names)
    assert _count(seed_engine, Course) == 3 * len(CATALOGUE)

    app = create_app(Settings(database_url=seed_url))
    try:
        with TestClient(app) as client:
            response = client.post("/auth/login", json={"student_number": "STU10049", "password": "test123"})
    finally:
        app.state.engine.dispose()
    assert response.status_code == 200


@pytest.mark.slow  # a subprocess of its own
def test_seed_still_accepts_students_as_the_name_of_count(seed_url, seed_engine):
    assert "7 new students" in run_seed(seed_url, "seed", "--students", "7")
    assert _count(seed_engine, Student) == 7


@pytest.mark.slow  # a subprocess of its own
def test_seed_students_runs_alone_and_is_idempotent(seed_url, seed_engine):
    assert "25 inserted" in run_seed(seed_url, "seed_students", "--count", "25")
    assert "0 inserted, 25 already there" in run_seed(seed_url, "seed_students", "--count", "25")
    with Session(seed_engine) as session:
        numbers = session.scalars(select(Student.student_number).order_by(Student.student_number)).all()
    assert numbers == [f"STU{10000 + n}" for n in range(25)]
    assert _count(seed_engine, Semester) == 0  # students only


@pytest.mark.slow  # a subprocess of its own
def test_seed_semesters_runs_alone_and_is_idempotent(seed_url, seed_engine):
    first = run_seed(seed_url, "seed_semesters")
    again = run_seed(seed_url, "seed_semesters")
    ids = re.findall(r"\d+", first)
    assert len(ids) == 3
    assert re.findall(r"\d+", again) == ids
    semesters = _semesters(seed_engine)
    assert set(semesters) == {s["name"] for s in demo_semesters(datetime.now(UTC))}
    assert len(_open_at(semesters, datetime.now(UTC))) == 1
    assert _count(seed_engine, Course) == 0
    assert _count(seed_engine, Student) == 0


@pytest.mark.slow  # a subprocess of its own
def test_seed_courses_runs_alone_and_fills_only_the_demo_semesters(seed_url, seed_engine):
    now = datetime.now(UTC)
    with Session(seed_engine) as session, session.begin():
        session.add(
            Semester(name="Someone else's semester", registration_start=now, registration_end=now + timedelta(days=1))
        )

    assert f"{3 * len(CATALOGUE)} inserted" in run_seed(seed_url, "seed_courses")
    assert "0 inserted" in run_seed(seed_url, "seed_courses")

    semesters = _semesters(seed_engine)
    demo_ids = {semesters[s["name"]].id for s in demo_semesters(now)}
    assert _courses_per_semester(seed_engine) == {semester_id: len(CATALOGUE) for semester_id in demo_ids}
    assert semesters["Someone else's semester"].id not in _courses_per_semester(seed_engine)


# ---- re-runs on later days ---------------------------------------------------------

# The open semester is named for the term 44 days ahead: on 10 July that is
# "Summer", on 25 July "Fall". The first run's open window (9 July - 9 August) is
# still open on 25 July.
BEFORE_TERM_CHANGE = datetime(2031, 7, 10, 12, tzinfo=UTC)
AFTER_TERM_CHANGE = datetime(2031, 7, 25, 12, tzinfo=UTC)


def test_rerun_the_next_day_recentres_the_same_open_semester(seed_engine):
    past, current, future = seed_semesters(seed_engine, now=BEFORE_TERM_CHANGE)
    next_day = BEFORE_TERM_CHANGE + timedelta(days=1)
    assert seed_semesters(seed_engine, now=next_day) == [past, current, future]

    semesters = _semesters(seed_engine)
    assert len(semesters) == 3
    [open_name] = _open_at(semesters, next_day)
    assert semesters[open_name].id == current
    assert semesters[open_name].registration_start == next_day - timedelta(days=1)
    assert semesters[open_name].registration_end == next_day + timedelta(days=30)


def test_rerun_after_the_term_changes_leaves_exactly_one_open_demo_semester(seed_engine):
    first = seed_semesters(seed_engine, now=BEFORE_TERM_CHANGE)
    seed_courses(seed_engine, semester_ids=first)
    second = seed_semesters(seed_engine, now=AFTER_TERM_CHANGE)
    assert second[1] != first[1], "the open semester should be named for the next term"
    assert seed_semesters(seed_engine, now=AFTER_TERM_CHANGE) == second  # idempotent again

    semesters = _semesters(seed_engine)
    [open_name] = _open_at(semesters, AFTER_TERM_CHANGE)
    assert semesters[open_name].id == second[1]
    # And none of the earlier run's semesters opens again later.
    for name, semester in semesters.items():
        if semester.id not in second:
            assert semester.registration_end <= AFTER_TERM_CHANGE, name
            assert semester.registration_start < semester.registration_end
    # The closed semester keeps its courses (and any registrations): history, not deleted.
    assert _courses_per_semester(seed_engine)[first[1]] == len(CATALOGUE)


def test_rerun_leaves_semesters_that_are_not_demo_semesters_alone(seed_engine):
    start, end = AFTER_TERM_CHANGE - timedelta(days=2), AFTER_TERM_CHANGE + timedelta(days=2)
    with Session(seed_engine, expire_on_commit=False) as session, session.begin():
        own = Semester(name="Soak 2031-07-25", registration_start=start, registration_end=end)
        session.add(own)
    seed_semesters(seed_engine, now=BEFORE_TERM_CHANGE)
    seed_semesters(seed_engine, now=AFTER_TERM_CHANGE)
    semester = _semesters(seed_engine)["Soak 2031-07-25"]
    assert (semester.registration_start, semester.registration_end) == (start, end)


def test_exactly_one_demo_semester_is_open_now():
    now = datetime.now(UTC)
    semesters = demo_semesters(now)
    assert len({semester["name"] for semester in semesters}) == 3
    open_now = [s for s in semesters if s["registration_start"] <= now < s["registration_end"]]
    assert len(open_now) == 1


def test_the_catalogue_has_small_courses_for_races():
    capacities = sorted(capacity for *_, capacity, _ in CATALOGUE)
    assert len(CATALOGUE) == 12
    assert capacities[0] <= 5
    assert len({name for name, *_ in CATALOGUE}) == 12
