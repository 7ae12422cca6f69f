import uuid

from pydantic import BaseModel, ConfigDict, Field

from app.core.fields import Password
from app.core.params import NO_NUL
from app.staff.models import StaffRole

USERNAME_MAX_LENGTH = 64


class StaffLoginRequest(BaseModel):
    username: str = Field(
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        pattern=NO_NUL,
        examples=["registrar"],
        description="No NUL characters",
    )
    password: Password = Field(examples=["registrar123"])


class StaffRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    name: str
    role: StaffRole
