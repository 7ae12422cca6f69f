import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.security import BCRYPT_MAX_PASSWORD_BYTES
from app.staff.models import StaffRole

_NO_NUL = r"^[^\x00]*$"
USERNAME_MAX_LENGTH = 64


class StaffLoginRequest(BaseModel):
    username: str = Field(
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        pattern=_NO_NUL,
        examples=["registrar"],
        description="No NUL characters",
    )
    password: str = Field(
        min_length=1,
        max_length=BCRYPT_MAX_PASSWORD_BYTES,
        pattern=_NO_NUL,
        examples=["registrar123"],
        description=f"At most {BCRYPT_MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt reads no more); no NUL characters",
    )

    @field_validator("username", "password")
    @classmethod
    def _no_nul_characters(cls, value: str) -> str:
        # As for students (app/auth/schemas.py): PostgreSQL text and bcrypt cannot take NUL.
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("password")
    @classmethod
    def _fits_bcrypt(cls, value: str) -> str:
        if len(value.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
            raise ValueError(f"password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes")
        return value


class StaffRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    name: str
    role: StaffRole
