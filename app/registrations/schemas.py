import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.registrations.models import RegistrationStatus


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
