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
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.security import hash_password
from app.courses.models import Course
from app.main import create_app
from app.registrations.invariants import check_invariants
from app.registrations.models import RegistrationEvent
from app.registrations.rules import parse_meetings, schedule_text
from app.semesters.models import Semester
from app.students.models import CompletedCourse, Student, StudentHold, StudentTerm
from scripts import migrate
from scripts.seed import seed_all
from scripts.seed_courses import CATALOGUE, seed_courses
from scripts.seed_semesters import demo_semesters, seed_semesters
from scripts.seed_students import clear_appointments, seed_students, stagger_appointments
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
    capacities = sorted(course.capacity for course in CATALOGUE)
    assert len(CATALOGUE) == 12
    assert capacities[0] <= 5
    assert len({course.name for course in CATALOGUE}) == 12


# ---- what the seeds give the registration rules (issue 12) -----------------------------------


def _demo_courses(engine, semester_id):
    with Session(engine) as session:
        return {c.code: c for c in session.scalars(select(Course).where(Course.semester_id == semester_id))}


def _overlapping_pairs(courses):
    pairs = set()
    for first in courses.values():
        for second in courses.values():
            if first.code < second.code and any(
                a.overlaps(b) for a in parse_meetings(first.meetings) for b in parse_meetings(second.meetings)
            ):
                pairs.add((first.code, second.code))
    return pairs


def test_every_demo_course_has_a_code_credits_meetings_and_its_schedule_text(seed_engine):
    _past, current, _future = seed_semesters(seed_engine)
    seed_courses(seed_engine, semester_ids=[current])
    courses = _demo_courses(seed_engine, current)
    assert set(courses) == {course.code for course in CATALOGUE}
    for course in courses.values():
        assert 1 <= course.credits <= 12, course.code
        assert course.meetings, course.code
        assert course.schedule == schedule_text(course.meetings), course.code
        assert set(course.prerequisites) <= set(courses), course.code
    # A few deliberate overlaps, and Linear Algebra only touching CS101 (no conflict).
    assert _overlapping_pairs(courses) == {("CS301", "CS401"), ("CS310", "CS410"), ("CS320", "CS470")}
    # The prerequisite chain CS101 -> CS201 -> CS301.
    assert courses["CS201"].prerequisites == ["CS101"]
    assert courses["CS301"].prerequisites == ["CS201"]
    assert courses["CS101"].prerequisites == []
    # More credits on offer than the default limit, so the limit bites.
    assert sum(course.credits for course in courses.values()) > 18


def test_rerunning_seed_courses_updates_old_demo_courses_unless_someone_registered(seed_engine):
    """A database seeded before courses had codes and meetings is brought up to date,
    except a course with registrations (its students' rules would change under them)."""
    _past, current, _future = seed_semesters(seed_engine)
    seed_courses(seed_engine, semester_ids=[current])
    with seed_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE courses SET code = 'OLD' || id, meetings = '[]', schedule = 'Mon/Wed', credits = 3 "
                "WHERE semester_id = :semester"
            ),
            {"semester": current},
        )
        connection.execute(
            text("UPDATE courses SET enrolled_count = 1 WHERE semester_id = :semester AND course_name = :name"),
            {"semester": current, "name": CATALOGUE[0].name},
        )
    assert seed_courses(seed_engine, semester_ids=[current]) == 0  # nothing new, only updates
    courses = {c.course_name: c for c in _demo_courses(seed_engine, current).values()}
    assert courses[CATALOGUE[0].name].code.startswith("OLD")  # registered: left alone
    assert courses[CATALOGUE[1].name].code == CATALOGUE[1].code
    assert courses[CATALOGUE[1].name].schedule == "Tue 10:30-12:00, Thu 10:30-12:00"


def test_seeded_students_have_transcripts_holds_and_part_time_limits(seed_engine):
    seed_students(seed_engine, count=100, rounds=4)
    seed_students(seed_engine, count=100, rounds=4)  # idempotent: nothing doubles
    with Session(seed_engine) as session:
        completed = session.execute(
            select(CompletedCourse.course_code, func.count()).group_by(CompletedCourse.course_code)
        ).all()
        held = session.scalars(
            select(Student.student_number)
            .join(StudentHold, StudentHold.student_id == Student.id)
            .where(StudentHold.lifted_at.is_(None))
            .order_by(Student.student_number)
        ).all()
        placed = session.scalar(
            select(func.count()).select_from(RegistrationEvent).where(RegistrationEvent.event_type == "HOLD_PLACED")
        )
        part_time = session.scalars(
            select(Student.student_number).where(Student.max_credits.is_not(None)).order_by(Student.student_number)
        ).all()
    assert dict(completed) == {"CS101": 50, "CS201": 25}  # half, and a quarter
    assert held == ["STU10013", "STU10042"]  # the demo holds among the first 100
    assert placed == 2
    assert part_time == ["STU10007", "STU10057"]


def test_a_lifted_seed_hold_is_not_placed_again(seed_engine):
    seed_students(seed_engine, count=20, rounds=4)
    with seed_engine.begin() as connection:
        connection.execute(text("UPDATE student_holds SET lifted_at = now(), lifted_by = 'registrar'"))
    seed_students(seed_engine, count=20, rounds=4)
    assert _count(seed_engine, StudentHold, StudentHold.lifted_at.is_(None)) == 0


def test_appointments_open_with_the_semester_unless_staggered(seed_engine):
    seed_all(seed_engine, count=40)
    _past, current, _future = seed_semesters(seed_engine)
    assert _count(seed_engine, StudentTerm, StudentTerm.registration_opens_at.is_not(None)) == 0

    start = datetime(2031, 1, 6, 9, tzinfo=UTC)
    opens = stagger_appointments(seed_engine, semester_id=current, groups=4, every=timedelta(minutes=30), start=start)
    assert opens == [start + timedelta(minutes=30 * group) for group in range(4)]
    with Session(seed_engine) as session:
        by_student = dict(
            session.execute(
                select(Student.student_number, StudentTerm.registration_opens_at)
                .join(StudentTerm, StudentTerm.student_id == Student.id)
                .where(StudentTerm.semester_id == current)
            ).all()
        )
    assert len(by_student) == 40
    # Groups of consecutive student numbers, ten each.
    assert [by_student[f"STU{10000 + n}"] for n in (0, 9, 10, 19, 20, 39)] == [
        opens[0], opens[0], opens[1], opens[1], opens[2], opens[3]
    ]  # fmt: skip
    assert clear_appointments(seed_engine, semester_id=current) == 40
    assert _count(seed_engine, StudentTerm, StudentTerm.registration_opens_at.is_not(None)) == 0


@pytest.mark.slow  # a subprocess of its own
def test_seed_students_staggers_the_open_semester_from_the_command_line(seed_url, seed_engine):
    run_seed(seed_url, "seed", "--count", "30")
    output = run_seed(seed_url, "seed_students", "--stagger-appointments", "3", "--every", "15", "--start", "now")
    assert "3 groups" in output
    with Session(seed_engine) as session:
        moments = session.scalars(select(StudentTerm.registration_opens_at).distinct()).all()
    assert len(moments) == 3
    assert max(moments) - min(moments) == timedelta(minutes=30)


def test_the_seeded_students_meet_every_rule_through_the_api(seed_url, seed_engine):
    """The seeds are there to exercise the rules: a hold, a missing prerequisite, a
    conflict, a part-time limit, and afterwards every invariant holds."""
    seed_all(seed_engine, count=60)
    _past, current, _future = seed_semesters(seed_engine)
    # One cheap hash for the whole test instead of the settings' cost.
    with seed_engine.begin() as connection:
        connection.execute(text("UPDATE students SET password_hash = :h"), {"h": hash_password("test123", rounds=4)})
    ids = {code: course.id for code, course in _demo_courses(seed_engine, current).items()}

    app = create_app(Settings(database_url=seed_url))
    try:
        with TestClient(app) as client:

            def register(student: str, code: str) -> tuple[int, str | None]:
                login = client.post("/auth/login", json={"student_number": student, "password": "test123"})
                assert login.status_code == 200, login.text
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                response = client.post(f"/courses/{ids[code]}/register", headers=headers)
                body = response.json()
                return response.status_code, body.get("code") or body.get("status")

            assert register("STU10013", "CS101") == (403, "REGISTRATION_HOLD")
            assert register("STU10001", "CS201") == (409, "PREREQUISITE_MISSING")  # odd: no CS101
            assert register("STU10002", "CS201") == (200, "ENROLLED")  # even: has CS101
            assert register("STU10000", "CS301") == (200, "ENROLLED")  # has CS201 too
            assert register("STU10000", "CS401") == (409, "SCHEDULE_CONFLICT")  # overlaps CS301
            assert register("STU10001", "MA101") == (200, "ENROLLED")
            assert register("STU10001", "CS101") == (200, "ENROLLED")  # touches MA101 only
            # Part-time: 9 credits at most.
            assert register("STU10007", "CS101") == (200, "ENROLLED")  # 4
            assert register("STU10007", "CS310") == (200, "ENROLLED")  # 7
            assert register("STU10007", "MA101") == (409, "CREDIT_LIMIT_EXCEEDED")  # 10
    finally:
        app.state.engine.dispose()
    with seed_engine.connect() as connection:
        report = check_invariants(connection)
    assert report.ok, [str(v) for v in report.violations]
