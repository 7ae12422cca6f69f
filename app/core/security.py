"""Password hashing (bcrypt) and access tokens (PyJWT, HS256)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import bcrypt
import jwt

from app.core.config import Settings
from app.core.errors import InvalidToken

# Pinned server-side: a token never chooses its own algorithm (no `alg=none`, no RS/HS confusion).
JWT_ALGORITHM = "HS256"
BCRYPT_MAX_PASSWORD_BYTES = 72


def hash_password(password: str, *, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    encoded = password.encode()
    # bcrypt 5 raises on longer input instead of truncating; such a password never matches.
    if len(encoded) > BCRYPT_MAX_PASSWORD_BYTES:
        return False
    return bcrypt.checkpw(encoded, password_hash.encode())


@lru_cache
def dummy_password_hash(rounds: int) -> str:
    """A hash to check against when the student number is unknown, so that an
    unknown student costs the same time as a wrong password."""
    return hash_password("not-a-real-password", rounds=rounds)


@dataclass(frozen=True, slots=True)
class TokenSubject:
    """What a verified token says about its bearer; no database round trip needed."""

    student_id: uuid.UUID
    student_number: str


def create_access_token(
    *, student_id: uuid.UUID, student_number: str, settings: Settings, now: datetime | None = None
) -> str:
    issued_at = now or datetime.now(UTC)
    payload = {
        "sub": str(student_id),
        "student_number": student_number,
        "iat": issued_at,
        "exp": issued_at + timedelta(minutes=settings.access_token_expire_minutes),
    }
    return jwt.encode(payload, settings.secret_key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, *, settings: Settings) -> TokenSubject:
    try:
        payload = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
        return TokenSubject(
            student_id=uuid.UUID(payload["sub"]),
            student_number=str(payload.get("student_number", "")),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise InvalidToken() from exc
