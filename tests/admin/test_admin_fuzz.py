"""Schemathesis over the /admin operations with a registrar's token: no 5xx, no
undocumented status, every body as documented.

Like tests/openapi/test_fuzz.py (which fuzzes every operation with a student's token,
so /admin answers it 403 there), in-process against a database of its own, seeded so
that small ids and the documented examples (STU10000) name real rows: a real
semester, courses with room and without, a registered student, a hold. Bounded for
CI (FUZZ_ADMIN_MAX_EXAMPLES per operation, derandomized); to dig deeper:

    FUZZ_RANDOM=1 FUZZ_ADMIN_MAX_EXAMPLES=300 .venv/bin/python -m pytest tests/admin/test_admin_fuzz.py
"""

import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.security import create_staff_access_token, hash_password
from app.courses.models import Course
from app.main import create_app
from app.registrations import service
from app.semesters.models import Semester
from app.staff.models import StaffAccount, StaffRole
from app.students.models import Student, StudentHold
from scripts import migrate
from tests.support.fuzz import CHECKS, UNCONNECTED_SETTINGS, FuzzTarget, authorize_every_case

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = int(os.environ.get("FUZZ_ADMIN_MAX_EXAMPLES", "15"))

_SETTINGS = UNCONNECTED_SETTINGS
schema = schemathesis.openapi.from_dict(create_app(_SETTINGS).openapi()).include(path_regex="^/admin/")

REGISTRAR_ID = uuid.uuid4()
REGISTRAR_TOKEN = create_staff_access_token(
    staff_id=REGISTRAR_ID, username="fuzz-registrar", role=StaffRole.REGISTRAR.value, settings=_SETTINGS
)
SEEDED_STUDENT_ID = uuid.uuid4()


_target = FuzzTarget()
schema.app = _target


authorize_every_case(schema, REGISTRAR_TOKEN)


@pytest.fixture(scope="module")
def fuzz_admin_app(database_url, create_database):
    url = create_database(f"course_reg_fuzz_admin_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    app_settings = Settings(database_url=url, secret_key=_SETTINGS.secret_key)
    engine = create_engine(url)
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            semester = Semester(
                name="Admin fuzz", registration_start=now - timedelta(days=1), registration_end=now + timedelta(days=30)
            )
            session.add(semester)
            session.flush()
            courses = [
                Course(
                    semester_id=semester.id,
                    code=f"AF{i}",
                    course_name=f"Admin fuzz {i}",
                    professor="Prof. Fuzz",
                    schedule="Mon 09:00-10:30",
                    max_capacity=1 + i % 3,
                    reserve_limit=i % 2,
                )
                for i in range(12)
            ]
            session.add_all(courses)
            password_hash = hash_password("test12345", rounds=app_settings.bcrypt_rounds)
            session.add(
                Student(
                    id=SEEDED_STUDENT_ID,
                    student_number="STU10000",
                    name="Fuzz Student",
                    password_hash=password_hash,
                    max_credits=60,
                )
            )
            session.add(
                StaffAccount(
                    id=REGISTRAR_ID,
                    username="fuzz-registrar",
                    name="Fuzz Registrar",
                    role=StaffRole.REGISTRAR.value,
                    password_hash=password_hash,
                )
            )
            session.flush()
            session.add(StudentHold(student_id=SEEDED_STUDENT_ID, reason="Seeded", placed_by="system"))
        # Registered in a few courses, so rosters, events, drops and capacity edits have rows to work on.
        context = service.WriteContext(now=now, actor="system")
        with session.begin():
            session.query(StudentHold).delete()  # the hold would refuse the registrations below
        for course in courses[1::2]:
            service.register(session, student_id=SEEDED_STUDENT_ID, course_id=course.id, now=now, context=context)
        with session.begin():
            session.add(StudentHold(student_id=SEEDED_STUDENT_ID, reason="Seeded", placed_by="system"))
    engine.dispose()
    app = create_app(app_settings)
    yield app
    app.state.engine.dispose()
    app.state.read_engine.dispose()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_admin_api_answers_generated_requests_without_5xx_and_as_documented(case, fuzz_admin_app):
    _target.app = fuzz_admin_app
    checks = None if os.environ.get("FUZZ_ALL_CHECKS") else CHECKS
    case.call_and_validate(checks=checks)


def test_the_admin_schema_is_fuzzed_operation_by_operation():
    """Every /admin operation is in the run (the filter above must not drop any)."""
    operations = [result.ok().label for result in schema.get_all_operations()]
    assert "GET /admin/whoami" in operations
    assert "PATCH /admin/courses/{course_id}" in operations
    assert all(" /admin/" in label for label in operations)
