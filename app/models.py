"""Every table, imported in one place so Alembic and tests see the whole metadata."""

from app.auth.models import LoginThrottle, RefreshToken
from app.core.db import Base
from app.courses.models import Course
from app.idempotency.models import IdempotencyKey
from app.registrations.models import CourseRegistration, EventType, RegistrationEvent, RegistrationStatus
from app.semesters.models import Semester
from app.staff.models import StaffAccount
from app.students.models import CompletedCourse, Student, StudentHold, StudentTerm
from app.waiting_room.models import WaitingRoom

__all__ = [
    "Base",
    "CompletedCourse",
    "Course",
    "CourseRegistration",
    "EventType",
    "IdempotencyKey",
    "LoginThrottle",
    "RefreshToken",
    "RegistrationEvent",
    "RegistrationStatus",
    "Semester",
    "StaffAccount",
    "Student",
    "StudentHold",
    "StudentTerm",
    "WaitingRoom",
]
