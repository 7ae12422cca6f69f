"""The load-test tooling, end to end: a short smoke run, and the pieces it rests on.

The smoke run is `make load PRESET=smoke` against a live server with two uvicorn
workers: ~30 users of all five scenarios for ~25 s, spread over two Locust
worker processes. It fails the build on any unexpected response, on a broken
data invariant, or when the run never exercised enrolling, queueing, a full
course and a promotion.

Locust always runs in a subprocess: importing it here would monkey-patch this
test process with gevent.
"""

import importlib.util
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.security import hash_password
from app.students.models import CompletedCourse, Student, StudentHold
from app.waiting_room.service import set_room
from bench import run_load
from scripts import migrate
from scripts.seed_students import DEMO_PASSWORD
from tests.support.environment import PROJECT_ROOT

SMOKE_STUDENTS = 100
# (capacity, reserve limit, meetings, prerequisites): the smallest is the race course, the
# next the queue course. The two largest overlap on purpose, and one needs a course that
# half the students have completed: the users must steer around both, as students do.
SMOKE_COURSES = [
    (3, 3, [{"day": "MON", "start": "09:00", "end": "10:00"}], []),
    (5, 5, [{"day": "TUE", "start": "09:00", "end": "10:00"}], []),
    (8, 4, [{"day": "WED", "start": "09:00", "end": "10:00"}], []),
    (20, 5, [{"day": "THU", "start": "09:00", "end": "10:00"}], ["SMOKE101"]),
    (40, 10, [{"day": "FRI", "start": "09:00", "end": "10:30"}], []),
    (60, 10, [{"day": "FRI", "start": "10:00", "end": "11:00"}], []),
]
# Among the students the ~30 users log in as (the first 30): a hold each.
HELD_STUDENTS = (1, 6, 11, 16, 21, 26)


def load_presets():
    """locustfiles/_presets.py is plain data, importable without Locust."""
    spec = importlib.util.spec_from_file_location("load_presets", PROJECT_ROOT / "locustfiles" / "_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the smoke run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_data(engine, factory, settings):
    """An open semester of our own with small and large courses, and students of our own
    (numbered like the seeded STU10000..., under a prefix no other test uses)."""
    semester = factory.semester()
    for capacity, reserve_limit, meetings, prerequisites in SMOKE_COURSES:
        factory.course(
            semester, capacity=capacity, reserve_limit=reserve_limit, meetings=meetings, prerequisites=prerequisites
        )
    prefix = f"SMOKE{uuid.uuid4().hex[:6]}-"
    password_hash = hash_password(DEMO_PASSWORD, rounds=4)
    students = [
        Student(student_number=f"{prefix}{10000 + n}", password_hash=password_hash, name=f"Load Student {n}")
        for n in range(SMOKE_STUDENTS)
    ]
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(students)
    with Session(engine) as session, session.begin():
        session.add_all(CompletedCourse(student_id=s.id, course_code="SMOKE101") for s in students[::2])
        session.add_all(StudentHold(student_id=students[n].id, reason="Smoke test hold") for n in HELD_STUDENTS)
    # The waiting room on, at a pace that lets the ~30 users in within a couple of seconds:
    # the users ask for their places, wait as told, and register with their admission tokens.
    with Session(engine) as session:
        now = datetime.now(UTC)
        set_room(session, semester_id=semester.id, enabled=True, fixed_rate_per_s=15, now=now, settings=settings)
    return semester, prefix


@pytest.mark.live_server
@pytest.mark.load
@pytest.mark.slow
def test_smoke_run_of_all_five_scenarios_passes_its_verdict(live_server, database_url, smoke_data, tmp_path):
    semester, prefix = smoke_data
    command = [
        sys.executable,
        "-m",
        "bench.run_load",
        "--preset",
        "smoke",
        "--host",
        live_server.base_url,
        "--database-url",
        database_url,
        "--semester-id",
        str(semester.id),
        "--students",
        str(SMOKE_STUDENTS),
        "--processes",
        "2",
        "--reports-dir",
        str(tmp_path),
        "--",
        "--student-prefix",
        prefix,  # a Locust option: run_load passes it on
    ]
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=150)
    output = completed.stdout[-6000:] + completed.stderr[-2000:]

    [folder] = tmp_path.glob("smoke-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["failures"] == [], output
    assert summary["invariants"]["status"] == "ok", output
    assert summary["passed"] and completed.returncode == 0, output

    assert summary["workers"] == 2
    assert set(load_presets().parse_mix(summary["mix"])) == set(load_presets().USER_CLASSES)
    assert summary["total"]["requests"] > 200
    names = {f"{e['method']} {e['name']}" for e in summary["endpoints"]}
    assert {"POST /auth/login", "POST /courses/{race}/register", "GET /semesters/{id}/my-courses"} <= names
    outcomes = summary["outcomes"]
    for outcome in ("ENROLLED", "RESERVED", "FULL", "DROPPED", "PROMOTED"):
        assert outcomes[outcome] > 0, (outcome, outcomes)
    # Every register request ended in exactly one counted outcome, summed over both workers.
    registers = sum(e["requests"] for e in summary["endpoints"] if e["name"].endswith("/register"))
    counted = ("ENROLLED", "RESERVED", "FULL", "ALREADY_REGISTERED", "REFUSED", "WAITED")
    assert registers == sum(outcomes.get(o, 0) for o in counted)
    # Every user went through the waiting room (on for this semester) before registering.
    assert {"POST /semesters/{id}/queue", "GET /semesters/{id}/queue/me"} <= names
    # Refusals are reported by code, and every one was expected (none is among the failures).
    assert summary["refusals"].get("COURSE_FULL", 0) >= outcomes["FULL"]
    assert summary["refusals"].get("REGISTRATION_HOLD", 0) > 0, summary["refusals"]

    reports = ("report.html", "locust_stats.csv", "locust_stats_history.csv", "locust_stats.json", "locust.log")
    for report in reports:
        assert (folder / report).stat().st_size > 0, report
    assert "VERDICT PASS" in completed.stdout


# ---- presets and the mix --------------------------------------------------------------


def test_presets_hold_their_documented_numbers():
    presets = load_presets().PRESETS
    assert (presets["load"].users, presets["load"].spawn_rate, presets["load"].run_time) == (100, 10, 600)
    assert (presets["stress"].users, presets["stress"].run_time) == (300, 900)
    assert (presets["spike"].users, presets["spike"].spawn_rate, presets["spike"].run_time) == (200, 200, 300)
    assert (presets["soak"].users, presets["soak"].run_time) == (80, 3600)
    for preset in presets.values():
        assert (PROJECT_ROOT / "locustfiles" / f"{preset.name}.py").is_file()
        load_presets().parse_mix(preset.mix)


def test_stress_climbs_in_steps_and_spike_jumps_and_falls_back():
    presets = load_presets().PRESETS
    stress = [presets["stress"].users_at(t, users=300, run_time=900) for t in (0, 179, 180, 540, 899, 900)]
    assert stress == [60, 60, 120, 240, 300, None]
    spike = [presets["spike"].users_at(t, users=200, run_time=300) for t in (0, 59, 60, 179, 180, 299)]
    assert spike == [20, 20, 200, 200, 20, 20]
    # --users and --run-time scale the curve.
    assert presets["spike"].users_at(30, users=50, run_time=100) == 50


def test_mix_syntax():
    parse_mix = load_presets().parse_mix
    assert parse_mix("StudentUser:1, RaceUser:2,ReserveQueueUser") == {
        "StudentUser": 1,
        "RaceUser": 2,
        "ReserveQueueUser": 1,
    }
    for bad in ("StudentUser:x", "NoSuchUser:1", "RaceUser:1,RaceUser:2", "RaceUser:0", "", "RaceUser:-1"):
        with pytest.raises(ValueError, match=r"."):
            parse_mix(bad)


def test_run_load_turns_make_variables_into_locust_options(tmp_path):
    args = run_load.parse_args(
        [
            "--preset",
            "spike",
            "--host",
            "127.0.0.1:9000",
            "--users",
            "40",
            "--spawn-rate",
            "20",
            "--run-time",
            "2m",
            "--mix",
            "RaceUser:2,StudentUser:1",
            "--processes",
            "3",
        ]
    )
    command = run_load.locust_command(args, tmp_path)
    assert args.host == "http://127.0.0.1:9000"
    assert command[command.index("-f") + 1].endswith("locustfiles/spike.py")
    for flag, value in [
        ("--users", "40"),
        ("--spawn-rate", "20.0"),
        ("--run-time", "2m"),
        ("--mix", "RaceUser:2,StudentUser:1"),
        ("--processes", "3"),
        ("--html", str(tmp_path / "report.html")),
        ("--report-dir", str(tmp_path)),
    ]:
        assert command[command.index(flag) + 1] == value, flag
    assert "--headless" in command
    with pytest.raises(SystemExit):
        run_load.parse_args(["--mix", "Nobody:1"])
    with pytest.raises(SystemExit):
        run_load.parse_args(["--run-time", "ten minutes"])


# ---- scripts/check_invariants.py ---------------------------------------------------------


@pytest.fixture
def broken_database(create_database):
    """A database of its own (the shared one must stay consistent), with a counter that lies."""
    url = create_database(f"course_reg_broken_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        semester_id = connection.execute(
            text(
                "INSERT INTO semesters (name, registration_start, registration_end) "
                "VALUES ('Broken', now(), now() + interval '1 day') RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO courses (semester_id, code, course_name, professor, schedule, max_capacity, "
                "reserve_limit, enrolled_count, reserved_count) "
                "VALUES (:semester, 'LIE1', 'Lying Counter', 'Prof. X', 'Mon', 5, 2, 1, 0)"
            ),
            {"semester": semester_id},
        )
    engine.dispose()
    yield url
    server = make_url(url)
    connection = psycopg2.connect(
        server.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{server.database}" WITH (FORCE)')
    connection.close()


def run_check_invariants(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.check_invariants", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow  # a subprocess of its own
def test_check_invariants_reports_a_lying_counter_and_exits_1(broken_database):
    completed = run_check_invariants("--database-url", broken_database)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "enrolled_count 1 but 0 enrolled rows" in completed.stdout

    report = json.loads(run_check_invariants("--database-url", broken_database, "--json").stdout)
    assert report["status"] == "violated"
    assert report["courses_checked"] == 1


@pytest.mark.slow  # a subprocess of its own
def test_check_invariants_passes_on_a_consistent_database_and_exits_2_without_one(database_url):
    assert run_check_invariants("--database-url", database_url).returncode == 0
    unreachable = run_check_invariants("--database-url", "postgresql://nobody:secret@127.0.0.1:1/none", "--json")
    assert unreachable.returncode == 2
    report = json.loads(unreachable.stdout)
    assert report["status"] == "unavailable"
    assert "secret" not in unreachable.stdout
