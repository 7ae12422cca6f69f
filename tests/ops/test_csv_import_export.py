"""The operators' CSV scripts (issue 13): import_catalogue, import_students, export_roster.

Their main functions run in this process against the test database (or a fresh
one for the example files), exactly as `python -m scripts.<name>` would run them.
"""

import csv
import io
import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from app.core.security import hash_password, verify_password
from app.courses.models import Course
from app.registrations import service
from app.students.models import CompletedCourse, Student
from scripts import export_roster, import_catalogue, import_students, migrate
from tests.support.environment import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "docs" / "examples"
HEADER = "code,course_name,professor,credits,meetings,prerequisites,max_capacity,reserve_limit\n"


def write(tmp_path: Path, content: str, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def run(module, *args: str) -> int:
    return module.main([str(arg) for arg in args])


def courses_of(engine, semester_id: int) -> dict[str, Course]:
    with Session(engine) as session:
        return {c.code: c for c in session.scalars(select(Course).where(Course.semester_id == semester_id))}


def snapshot(engine, semester_id: int) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM courses WHERE semester_id = :s ORDER BY id"), {"s": semester_id}
        ).all()


@pytest.fixture
def fresh_url(create_database):
    url = create_database(f"course_reg_csv_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    return url


@pytest.fixture
def fresh_engine(fresh_url):
    engine = create_engine(fresh_url)
    yield engine
    engine.dispose()


# ---- import_catalogue -----------------------------------------------------------------------


def test_the_example_catalogue_imports_and_a_second_run_changes_nothing(database_url, engine, factory, capsys):
    semester = factory.semester()
    file = EXAMPLES / "catalogue.csv"
    assert run(import_catalogue, file, "--semester", semester.id, "--database-url", database_url) == 0
    assert "8 added, 0 updated, 0 unchanged" in capsys.readouterr().out
    before = snapshot(engine, semester.id)

    assert run(import_catalogue, file, "--semester", semester.id, "--database-url", database_url) == 0
    assert "0 added, 0 updated, 8 unchanged" in capsys.readouterr().out
    assert snapshot(engine, semester.id) == before  # not even updated_at moved

    courses = courses_of(engine, semester.id)
    assert courses["CS201"].prerequisites == ["CS101"]
    assert courses["CS450"].prerequisites == ["CS201", "MA201"]
    assert courses["MA101"].meetings == [
        {"day": day, "start": "08:00", "end": "09:00"} for day in ("MON", "WED", "FRI")
    ]
    assert courses["MA101"].schedule == "Mon 08:00-09:00, Wed 08:00-09:00, Fri 08:00-09:00"
    assert (courses["HI100"].course_name, courses["HI100"].credits) == ("History of Computing, 1936-1976", 0)
    assert (courses["HI100"].meetings, courses["HI100"].reserve_limit) == ([], 0)


def test_a_catalogue_with_bad_rows_reports_every_line_and_writes_nothing(
    database_url, engine, factory, capsys, tmp_path
):
    semester = factory.semester()
    file = write(
        tmp_path,
        HEADER
        + "OK1,Fine Course,Prof. A,3,MON 09:00-10:00,,10,2\n"  # line 2: good, still not written
        + "BAD1,Too Many Credits,Prof. A,13,,,10,2\n"  # 3
        + "BAD2,Backwards,Prof. A,3,MON 10:00-09:00,,10,2\n"  # 4
        + "OK1,Same Code,Prof. A,3,,,10,2\n"  # 5
        + "BAD3,Odd Day,Prof. A,3,MOO 09:00-10:00,,10,2\n"  # 6
        + "BAD4,No Professor,,3,,,10,2\n"  # 7
        + "BAD5,Short Row,Prof. A,3\n"  # 8
        + "BAD6,Own Prerequisite,Prof. A,3,,BAD6,10,2\n"  # 9
        + "BAD7,Negative Capacity,Prof. A,3,,,-1,x\n"  # 10
        + "BAD8,Fine Course,Prof. A,3,,,10,2\n",  # 11: the name of line 2
    )
    assert run(import_catalogue, file, "--semester", semester.id, "--database-url", database_url) == 1
    errors = capsys.readouterr().err
    for line, reason in [
        (3, "credits 13 is out of range (0-12)"),
        (4, "ends before it starts"),
        (5, "code 'OK1' is already on line 2"),
        (6, "day 'MOO' is not one of MON"),
        (7, "professor is empty"),
        (8, "4 cells, the header has 8"),
        (9, "BAD6 cannot be its own prerequisite"),
        (10, "max_capacity -1 is out of range"),
        (10, "reserve_limit 'x' is not a whole number"),
        (11, "course_name 'Fine Course' is already on line 2"),
    ]:
        assert f"{file}:{line}: " in errors and reason in errors, (line, reason, errors)
    assert ":2: " not in errors
    assert "10 problem(s)" in errors and "nothing was written" in errors
    assert courses_of(engine, semester.id) == {}


def test_a_catalogue_without_a_required_column_is_refused_at_the_header(database_url, factory, capsys, tmp_path):
    semester = factory.semester()
    file = write(tmp_path, "code,course_name,credits,max_capacity,room\nX1,Name,3,10,B12\n")
    assert run(import_catalogue, file, "--semester", semester.id, "--database-url", database_url) == 1
    errors = capsys.readouterr().err
    assert f"{file}:1: missing column 'professor'" in errors
    assert f"{file}:1: unknown column 'room'" in errors


def test_a_catalogue_for_a_semester_that_does_not_exist_writes_nothing(database_url, capsys):
    assert run(import_catalogue, EXAMPLES / "catalogue.csv", "--semester", 0, "--database-url", database_url) == 1
    assert "there is no semester 0" in capsys.readouterr().err


def _register(engine, course_id: int, students) -> None:
    with Session(engine) as session:
        semester_now = datetime.now(UTC)
        for student in students:
            service.register(session, student_id=student.id, course_id=course_id, now=semester_now)


def test_updating_a_course_with_registrations_refuses_rule_changes_and_writes_nothing(
    database_url, engine, factory, capsys, tmp_path
):
    semester = factory.semester()
    first = HEADER + "R1,Rules,Prof. A,3,MON 09:00-10:00,,2,2\nR2,Other,Prof. B,3,TUE 09:00-10:00,,5,5\n"
    assert run(import_catalogue, write(tmp_path, first), "--semester", semester.id, "--database-url", database_url) == 0
    capsys.readouterr()
    course = courses_of(engine, semester.id)["R1"]
    _register(engine, course.id, factory.students(3))  # 2 enrolled, 1 reserved
    before = snapshot(engine, semester.id)

    changed = write(
        tmp_path,
        HEADER
        + "R1,Rules,Prof. A,4,MON 09:00-10:30,,1,0\n"  # line 2: credits, meetings, capacity, reserve limit
        + "R2,Other,Prof. C,3,TUE 09:00-10:00,,5,5\n",  # 3: a fine change, not written either
        "changed.csv",
    )
    assert run(import_catalogue, changed, "--semester", semester.id, "--database-url", database_url) == 1
    errors = capsys.readouterr().err
    assert "R1: has 3 registrations: its credits cannot change from 3 to 4" in errors
    assert "R1: has 3 registrations: its meetings cannot change" in errors
    assert "R1: max_capacity 1 is below the 2 enrolled" in errors
    assert "R1: reserve_limit 0 is below the 1 reserved" in errors
    assert ":3: " not in errors
    assert snapshot(engine, semester.id) == before

    # Raising the capacity would have to promote the reserve list: the admin API does that.
    raised = write(tmp_path, HEADER + "R1,Rules,Prof. A,3,MON 09:00-10:00,,3,2\n", "raised.csv")
    assert run(import_catalogue, raised, "--semester", semester.id, "--database-url", database_url) == 1
    assert "use the admin API" in capsys.readouterr().err

    # What does not touch the students' rules goes through.
    renamed = write(tmp_path, HEADER + "R1,Rules Renamed,Prof. Z,3,MON 09:00-10:00,,2,3\n", "renamed.csv")
    assert run(import_catalogue, renamed, "--semester", semester.id, "--database-url", database_url) == 0
    assert "0 added, 1 updated, 0 unchanged" in capsys.readouterr().out
    course = courses_of(engine, semester.id)["R1"]
    assert (course.course_name, course.professor, course.reserve_limit) == ("Rules Renamed", "Prof. Z", 3)


def test_a_course_name_another_course_of_the_semester_has_is_refused(database_url, factory, capsys, tmp_path):
    semester = factory.semester()
    first = write(tmp_path, HEADER + "N1,Taken Name,Prof. A,3,,,5,5\n")
    assert run(import_catalogue, first, "--semester", semester.id, "--database-url", database_url) == 0
    second = write(tmp_path, HEADER + "N2,Taken Name,Prof. A,3,,,5,5\n", "second.csv")
    assert run(import_catalogue, second, "--semester", semester.id, "--database-url", database_url) == 1
    assert "course_name 'Taken Name' belongs to course N1 of the semester" in capsys.readouterr().err


# ---- import_students -------------------------------------------------------------------------


def test_the_example_students_import_log_in_and_a_second_run_changes_nothing(fresh_url, fresh_engine, capsys):
    file = EXAMPLES / "students.csv"
    assert run(import_students, file, "--database-url", fresh_url) == 0
    out = capsys.readouterr().out
    assert "5 added, 0 updated, 0 unchanged; 6 completed courses added; 1 password hashes computed" in out
    with Session(fresh_engine) as session:
        students = {s.student_number: s for s in session.scalars(select(Student))}
        completed = session.execute(
            select(Student.student_number, CompletedCourse.course_code).join(
                CompletedCourse, CompletedCourse.student_id == Student.id
            )
        ).all()
    assert all(verify_password("welcome-2027", s.password_hash) for s in students.values())
    assert (students["S2027003"].max_credits, students["S2027001"].max_credits) == (12, None)
    assert sorted(code for number, code in completed if number == "S2027004") == ["CS101", "CS201", "MA101"]

    before = {s: (v.name, v.password_hash, v.max_credits, v.updated_at) for s, v in students.items()}
    assert run(import_students, file, "--database-url", fresh_url) == 0
    out = capsys.readouterr().out
    assert "0 added, 0 updated, 5 unchanged; 0 completed courses added; 0 password hashes computed" in out
    with Session(fresh_engine) as session:
        after = {
            s.student_number: (s.name, s.password_hash, s.max_credits, s.updated_at)
            for s in session.scalars(select(Student))
        }
    assert after == before


def test_a_students_file_with_bad_rows_reports_every_line_and_writes_nothing(database_url, engine, capsys, tmp_path):
    prefix = f"B{uuid.uuid4().hex[:6]}"
    good_hash = hash_password("x", rounds=4)
    file = write(
        tmp_path,
        "student_number,name,password,password_hash,max_credits,completed_courses\n"
        f"{prefix}1,Good Student,pw,,,\n"  # 2
        f"{prefix}1,Same Number,pw,,,\n"  # 3
        f"{prefix}3,Both,pw,{good_hash},,\n"  # 4
        f"{prefix}4,Neither,,,,\n"  # 5
        f"{prefix}5,Bad Hash,,not-a-hash,,\n"  # 6
        f"{prefix}6,Too Many Credits,pw,,99,\n"  # 7
        f"{prefix}7,Bad Code,pw,,,CS 101\n"  # 8
        f"{prefix} 8,Space In Number,pw,,,\n"  # 9
        f"{prefix}9,,pw,,,\n"  # 10
        f"{prefix}10,Long Password,{'p' * 73},,,\n",  # 11
    )
    assert run(import_students, file, "--database-url", database_url) == 1
    errors = capsys.readouterr().err
    for line, reason in [
        (3, "is already on line 2"),
        (4, "not both"),
        (5, "no password and no password_hash"),
        (6, "password_hash is not a bcrypt hash"),
        (7, "max_credits 99 is out of range (0-60)"),
        (8, "completed_courses: 'CS 101' is not a course code"),
        (9, "has characters other than"),
        (10, "name is empty"),
        (11, "longer than 72 bytes"),
    ]:
        assert f"{file}:{line}: " in errors and reason in errors, (line, reason, errors)
    assert "9 problem(s)" in errors
    with Session(engine) as session:
        assert session.scalar(select(func.count()).where(Student.student_number.startswith(prefix))) == 0


def test_an_import_updates_names_and_limits_but_keeps_passwords_unless_told(database_url, engine, capsys, tmp_path):
    number = f"U{uuid.uuid4().hex[:8]}"
    header = "student_number,name,password,max_credits,completed_courses\n"
    assert (
        run(
            import_students,
            write(tmp_path, header + f"{number},First Name,one,,CS101\n"),
            "--database-url",
            database_url,
        )
        == 0
    )
    second = write(tmp_path, header + f"{number},New Name,two,12,CS101;MA101\n", "second.csv")
    assert run(import_students, second, "--database-url", database_url) == 0
    assert "1 updated" in capsys.readouterr().out

    def student():
        with Session(engine) as session:
            row = session.scalar(select(Student).where(Student.student_number == number))
            codes = session.scalars(select(CompletedCourse.course_code).where(CompletedCourse.student_id == row.id))
            return row, sorted(codes)

    row, codes = student()
    assert (row.name, row.max_credits, codes) == ("New Name", 12, ["CS101", "MA101"])
    assert verify_password("one", row.password_hash)  # a plain password is for new students only

    assert run(import_students, second, "--reset-passwords", "--database-url", database_url) == 0
    row, _ = student()
    assert verify_password("two", row.password_hash)


def test_ten_thousand_students_import_in_seconds_with_one_hash_per_distinct_password(
    database_url, engine, capsys, tmp_path
):
    prefix = f"K{uuid.uuid4().hex[:6]}-"
    lines = ["student_number,name,password,completed_courses"]
    lines += [
        f"{prefix}{n},Student {n},{('alpha', 'beta', 'gamma')[n % 3]},{'CS101' if n % 2 else ''}" for n in range(10_000)
    ]
    file = write(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    assert run(import_students, file, "--database-url", database_url) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert "10000 added" in out and "5000 completed courses added" in out and "3 password hashes computed" in out
    assert elapsed < 30, elapsed  # about 2-4 s here; generous for a busy machine
    with Session(engine) as session:
        assert session.scalar(select(func.count()).where(Student.student_number.startswith(prefix))) == 10_000


# ---- export_roster ----------------------------------------------------------------------------


def test_the_roster_lists_the_enrolled_then_the_reserve_list_in_position_order(
    database_url, engine, factory, capsys, tmp_path
):
    course = factory.course(capacity=2, reserve_limit=3)
    students = factory.students(4)
    _register(engine, course.id, students)
    # The first reserved student drops: the second moves up to position 1.
    with Session(engine) as session:
        service.drop(session, student_id=students[2].id, course_id=course.id, now=datetime.now(UTC))

    output = tmp_path / "roster.csv"
    assert run(export_roster, "--course", course.id, "--output", output, "--database-url", database_url) == 0
    assert "2 enrolled, 1 reserved" in capsys.readouterr().out
    rows = list(csv.DictReader(output.open()))
    assert [row["student_number"] for row in rows] == [
        s.student_number for s in (students[0], students[1], students[3])
    ]
    assert [(row["status"], row["reserve_position"]) for row in rows] == [
        ("ENROLLED", ""),
        ("ENROLLED", ""),
        ("RESERVED", "1"),
    ]
    assert list(rows[0]) == ["student_number", "name", "status", "reserve_position", "registered_at"]
    assert datetime.fromisoformat(rows[0]["registered_at"]).tzinfo is not None

    # To standard output, the same CSV.
    assert run(export_roster, "--course", course.id, "--database-url", database_url) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == rows


def test_the_roster_of_an_empty_course_is_a_header_and_of_no_course_an_error(database_url, factory, capsys):
    course = factory.course()
    assert run(export_roster, "--course", course.id, "--database-url", database_url) == 0
    assert capsys.readouterr().out == "student_number,name,status,reserve_position,registered_at\n"
    assert run(export_roster, "--course", 0, "--database-url", database_url) == 2
    assert "there is no course 0" in capsys.readouterr().err


@pytest.mark.slow  # subprocesses of their own
def test_the_scripts_run_as_operators_run_them(database_url, engine, factory, tmp_path):
    """`python -m scripts.import_catalogue`: exit 1 and the lines on stderr for a bad file,
    then 0 for the example; the roster of a course comes out on stdout."""
    semester = factory.semester()
    env = {**os.environ, "DATABASE_URL": database_url}

    def python_m(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *map(str, args)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    bad = write(tmp_path, HEADER + "X1,Bad,Prof. A,99,,,5,5\nX2,Bad Too,Prof. A,3,SUN 9-10,,5,5\n")
    completed = python_m("scripts.import_catalogue", bad, "--semester", semester.id)
    assert completed.returncode == 1
    assert f"{bad}:2: credits 99" in completed.stderr and f"{bad}:3: meetings" in completed.stderr

    completed = python_m("scripts.import_catalogue", EXAMPLES / "catalogue.csv", "--semester", semester.id)
    assert completed.returncode == 0, completed.stderr
    assert "8 added" in completed.stdout
    course_id = courses_of(engine, semester.id)["CS101"].id
    completed = python_m("scripts.export_roster", "--course", course_id)
    assert (completed.returncode, completed.stdout) == (0, ",".join(export_roster.COLUMNS) + "\n")
