import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.fields import Password
from app.core.params import NO_NUL


class LoginRequest(BaseModel):
    student_number: str = Field(
        min_length=1, max_length=32, pattern=NO_NUL, examples=["STU10000"], description="No NUL characters"
    )
    password: Password = Field(examples=["test123"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")
    refresh_token: str = Field(
        description="Single use: POST /auth/refresh trades it for a new access token and a new refresh token; "
        "POST /auth/logout revokes it"
    )


# secrets.token_urlsafe(32) is 43 characters; room to change the length without a new schema.
_REFRESH_TOKEN_CHARACTERS = r"^[A-Za-z0-9_-]+$"


class RefreshRequest(BaseModel):
    refresh_token: str = Field(
        min_length=1, max_length=200, pattern=_REFRESH_TOKEN_CHARACTERS, description="From a login or a refresh"
    )


class HoldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    reason: str
    placed_at: datetime


class StudentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    student_number: str
    name: str
    max_credits: int = Field(description="Per semester: ENROLLED plus RESERVED credits may not pass it")
    completed_courses: list[str] = Field(
        description="Codes of completed courses (prerequisites are checked against them)"
    )
    holds: list[HoldRead] = Field(description="Active holds: while any is active, registering is refused")
