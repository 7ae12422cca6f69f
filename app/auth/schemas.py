import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.security import BCRYPT_MAX_PASSWORD_BYTES

# In the schema too, so a generated client knows the limits the server enforces.
_NO_NUL = r"^[^\x00]*$"


class LoginRequest(BaseModel):
    student_number: str = Field(
        min_length=1, max_length=32, pattern=_NO_NUL, examples=["STU10000"], description="No NUL characters"
    )
    password: str = Field(
        min_length=1,
        max_length=BCRYPT_MAX_PASSWORD_BYTES,
        pattern=_NO_NUL,
        examples=["test123"],
        description=f"At most {BCRYPT_MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt reads no more); no NUL characters",
    )

    @field_validator("student_number", "password")
    @classmethod
    def _no_nul_characters(cls, value: str) -> str:
        # PostgreSQL text cannot hold NUL (psycopg2 raises ValueError before sending
        # the query), and C bcrypt implementations stop reading a password at NUL:
        # refuse it here, as a 422, instead of failing deeper down with a 500.
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("password")
    @classmethod
    def _fits_bcrypt(cls, value: str) -> str:
        # bcrypt only reads 72 bytes; refuse rather than silently ignore the rest.
        if len(value.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
            raise ValueError(f"password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes")
        return value


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
