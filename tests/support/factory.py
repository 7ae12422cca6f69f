"""Committed rows with random names, so tests stay independent (the `factory` fixture)."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.security import create_access_token, create_staff_access_token
from app.courses.models import Course
from app.registrations.rules import schedule_text
from app.semesters.models import Semester
from app.staff.models import StaffAccount, StaffRole
from app.students.models import Student

Row = TypeVar("Row")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Factory:
    """Makes committed rows with random names, so tests stay independent."""

    engine: Engine
    settings: Settings
    _password_hash: str

    def semester(self, *, opens: timedelta = timedelta(days=-1), closes: timedelta = timedelta(days=1)) -> Semester:
        now = datetime.now(UTC)
        semester = Semester(name=unique("Semester"), registration_start=now + opens, registration_end=now + closes)
        return self._add(semester)

    def course(
        self,
        semester: Semester | None = None,
        *,
        capacity: int = 30,
        reserve_limit: int = 10,
        code: str | None = None,
        credits: int = 3,
        meetings: Sequence[Mapping[str, str]] = (),
        prerequisites: Sequence[str] = (),
    ) -> Course:
        """No meetings by default: a course made here never conflicts unless a test says so."""
        semester = semester or self.semester()
        course = Course(
            semester_id=semester.id,
            code=code or unique("C")[:20],
            course_name=unique("Course"),
            professor="Prof. Test",
            schedule=schedule_text(meetings) or "Mon 09:00-10:30",
            max_capacity=capacity,
            reserve_limit=reserve_limit,
            credits=credits,
            meetings=[dict(meeting) for meeting in meetings],
            prerequisites=list(prerequisites),
        )
        return self._add(course)

    def student(self) -> Student:
        return self._add(
            Student(student_number=unique("T")[:32], password_hash=self._password_hash, name="Test Student")
        )

    def students(self, count: int) -> list[Student]:
        students = [
            Student(student_number=unique("T")[:32], password_hash=self._password_hash, name=f"Student {i}")
            for i in range(count)
        ]
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add_all(students)
        return students

    def staff(self, *, role: StaffRole = StaffRole.REGISTRAR) -> StaffAccount:
        """A staff account with the test password (TEST_PASSWORD), like every factory student."""
        return self._add(
            StaffAccount(
                username=unique("staff"), password_hash=self._password_hash, name="Test Staff", role=role.value
            )
        )

    def staff_token(self, staff: StaffAccount) -> str:
        return create_staff_access_token(
            staff_id=staff.id, username=staff.username, role=staff.role, settings=self.settings
        )

    def staff_auth(self, staff: StaffAccount) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token(staff)}"}

    def token(self, student: Student) -> str:
        return create_access_token(student_id=student.id, student_number=student.student_number, settings=self.settings)

    def auth(self, student: Student) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(student)}"}

    def _add(self, row: Row) -> Row:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return row
