import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

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
