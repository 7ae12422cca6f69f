"""A registrar's view of students, and the bodies of their changes."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.core.fields import Password, Timestamp
from app.core.params import NO_NUL
from app.core.security import BCRYPT_MAX_PASSWORD_BYTES
from app.courses.schemas import CourseCode

_MAX_CREDITS = Field(
    default=None, ge=0, le=60, description="The student's own credit limit per semester; null: DEFAULT_MAX_CREDITS"
)


class StudentCreate(BaseModel):
    student_number: str = Field(min_length=1, max_length=32, pattern=NO_NUL, examples=["STU20000"])
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    password: Annotated[
        Password,
        Field(min_length=8, description=f"At least 8 characters, at most {BCRYPT_MAX_PASSWORD_BYTES} bytes in UTF-8"),
    ]
    max_credits: StrictInt | None = _MAX_CREDITS


class StudentUpdate(BaseModel):
    """Only the fields sent change; `max_credits: null` gives the student the default limit again."""

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL, description="Null: unchanged")
    max_credits: StrictInt | None = _MAX_CREDITS


class HoldCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL, examples=["Unpaid fees"])


class CompletedCourseCreate(BaseModel):
    course_code: CourseCode


class AppointmentUpdate(BaseModel):
    registration_opens_at: Timestamp | None = Field(
        description="When the student may start registering in the semester; null: with the semester"
    )


class AdminHoldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    reason: str
    placed_at: datetime
    placed_by: str | None
    lifted_at: datetime | None
    lifted_by: str | None


class AdminStudentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    student_number: str
    name: str
    max_credits: int | None = Field(description="The student's own limit; null: DEFAULT_MAX_CREDITS applies")
    completed_courses: list[str]
    holds: list[AdminHoldRead] = Field(description="Active holds")


class AppointmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    student_number: str
    semester_id: int
    registration_opens_at: datetime | None
