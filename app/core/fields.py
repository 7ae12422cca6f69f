"""Request-body field types shared by several domains."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

from app.core.params import NO_NUL
from app.core.security import BCRYPT_MAX_PASSWORD_BYTES

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _written_as_text(value: Any) -> Any:
    """ISO 8601 text only: pydantic would also read a number as seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date and time, with an offset or Z")
    return value


def _plausible(value: datetime) -> datetime:
    """Far enough from year 1 and 9999 that no time zone can push it out of what
    Python's datetime reads back from PostgreSQL."""
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 1970 and 9000")
    return value


# With an offset or Z: a time without one would be read in the server's zone.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_written_as_text), AfterValidator(_plausible)]


def _fits_bcrypt(value: str) -> str:
    """bcrypt reads 72 bytes at most: refuse more rather than silently ignore the rest."""
    if len(value.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes")
    return value


# A password as the login and account routes take it. No NUL (the pattern, in the
# schema too, so a generated client knows): PostgreSQL text cannot hold it and C
# bcrypt implementations stop reading at it. The length in characters is what a
# schema can say; the bytes are checked after.
Password = Annotated[
    str,
    Field(
        min_length=1,
        max_length=BCRYPT_MAX_PASSWORD_BYTES,
        pattern=NO_NUL,
        description=f"At most {BCRYPT_MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt reads no more); no NUL characters",
    ),
    AfterValidator(_fits_bcrypt),
]
