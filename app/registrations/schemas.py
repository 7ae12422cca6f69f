import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.registrations.models import EventType, RegistrationStatus


class RegistrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    course_id: int
    status: RegistrationStatus
    reserve_position: int | None


class DropRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    course_id: int
    dropped_status: RegistrationStatus
    promoted_student_id: uuid.UUID | None
    promoted_from_position: int | None


class MyCourseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    course_id: int
    course_name: str
    professor: str
    schedule: str
    status: RegistrationStatus
    reserve_position: int | None
    registered_at: datetime


class SwapRequest(BaseModel):
    drop_course_id: int = Field(
        ge=1, le=2**31 - 1, description="The course to give up, only if the new one gives a seat"
    )


class SwapRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    course_id: int
    status: RegistrationStatus
    dropped_course_id: int
    promoted_student_id: uuid.UUID | None
    promoted_from_position: int | None


class MyStatusRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    semester_id: int
    credits: int = Field(description="Credits of my ENROLLED and RESERVED registrations in the semester")
    max_credits: int
    registration_opens_at: datetime = Field(description="My appointment (or the semester's start)")
    can_register_now: bool = Field(description="The window is open, my appointment has started, and no hold is active")


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    event_type: EventType
    course_id: int | None
    reserve_position: int | None
    actor: str
    details: dict[str, Any]


class AdminEventRead(EventRead):
    """An event as a registrar sees it: whose, in which semester, and from which request."""

    student_id: uuid.UUID | None
    semester_id: int | None
    request_id: str | None


class RosterEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    student_number: str
    name: str
    status: RegistrationStatus
    reserve_position: int | None
    registered_at: datetime


ROSTER_CSV_COLUMNS = tuple(RosterEntry.model_fields)
