"""Seed scripts: idempotent, fast, and producing data a student can use at once."""

import subprocess
import sys
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.courses.models import Course
from app.semesters.models import Semester
from app.students.models import Student
from scripts.seed_courses import CATALOGUE
from scripts.seed_semesters import demo_semesters
from tests.conftest import PROJECT_ROOT


def _count(engine, model, *where):
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_seed_all_is_idempotent_and_logs_in_the_demo_student(create_database, client, database_url, engine):
    # Seeding in a subprocess runs the scripts exactly as an operator would.
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, "-m", "scripts.seed", "--students", "50"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
    names = [semester["name"] for semester in demo_semesters(datetime.now(UTC))]
    assert _count(engine, Student, Student.student_number.like("STU1%")) == 50
    assert _count(engine, Semester, Semester.name.in_(names)) == 3
    with Session(engine) as session:
        semester_ids = session.scalars(select(Semester.id).where(Semester.name.in_(names))).all()
    assert _count(engine, Course, Course.semester_id.in_(semester_ids)) == 3 * len(CATALOGUE)
    assert "0 new students" in completed.stdout

    response = client.post("/auth/login", json={"student_number": "STU10049", "password": "test123"})
    assert response.status_code == 200


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
