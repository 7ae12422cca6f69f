"""Admission tokens: a student's place in a semester's waiting room, signed and stateless.

HS256 with the app's SECRET_KEY, like access tokens, but never mistakable for one:
the `kind` is `admission` (which the access-token check refuses) and the audience
is `waiting-room` (which an access token lacks, and which the access-token check
refuses when present). The claims say whose place it is, in which semester, and
its ticket; whether the ticket is admitted yet is the room's frontier to say, so
the same token becomes good the moment the frontier passes it, with nothing stored.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt

from app.core.security import JWT_ALGORITHM
from app.waiting_room.errors import AdmissionTokenInvalid

ADMISSION_KIND = "admission"
ADMISSION_AUDIENCE = "waiting-room"
# Verified tokens a worker remembers, the least recently used forgotten first: about the
# students registering in the same few minutes.
MAX_REMEMBERED = 20_000


@dataclass(frozen=True, slots=True)
class AdmissionClaims:
    student_id: uuid.UUID
    semester_id: int
    ticket: int
    expires_at: int  # the `exp` claim, seconds since the epoch


def create_admission_token(
    *, student_id: uuid.UUID, semester_id: int, ticket: int, secret_key: str, now: datetime, lifetime: timedelta
) -> str:
    payload = {
        "sub": str(student_id),
        "kind": ADMISSION_KIND,
        "aud": ADMISSION_AUDIENCE,
        "sem": semester_id,
        "tkt": ticket,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(payload, secret_key, algorithm=JWT_ALGORITHM)


def decode_admission_token(token: str, *, secret_key: str) -> AdmissionClaims:
    """The claims of a token we signed as an admission token; AdmissionTokenInvalid otherwise
    (a bad signature, expired, another kind of token, claims missing or malformed).

    A waiting student sends the same token with every registration: a token verified once
    is remembered (`_verified`), and a repeat costs a dictionary lookup and the expiry check
    instead of the HMAC and the claims (about 30 us of the worker's CPU)."""
    claims = _verified(token, secret_key)
    if claims.expires_at <= time.time():
        raise AdmissionTokenInvalid()
    return claims


@lru_cache(maxsize=MAX_REMEMBERED)
def _verified(token: str, secret_key: str) -> AdmissionClaims:
    """A token's signature and claims, checked; only a valid token is remembered (the key
    is the whole token, signature included, so only exactly that token is ever accepted
    from memory)."""
    try:
        payload = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            audience=ADMISSION_AUDIENCE,
            options={"require": ["sub", "aud", "exp", "iat", "sem", "tkt"]},
        )
        if payload.get("kind") != ADMISSION_KIND:
            raise AdmissionTokenInvalid()
        semester_id, ticket = payload["sem"], payload["tkt"]
        if type(semester_id) is not int or type(ticket) is not int:
            raise AdmissionTokenInvalid()
        return AdmissionClaims(
            student_id=uuid.UUID(payload["sub"]),
            semester_id=semester_id,
            ticket=ticket,
            expires_at=int(payload["exp"]),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError) as exc:
        raise AdmissionTokenInvalid() from exc


def place_claims(token: str, *, student_id: uuid.UUID, semester_id: int, secret_key: str) -> AdmissionClaims:
    """The claims of `token` when it is this student's place in this semester (signed by us,
    unexpired); AdmissionTokenInvalid otherwise, another student's or semester's included."""
    claims = decode_admission_token(token, secret_key=secret_key)
    if claims.student_id != student_id or claims.semester_id != semester_id:
        raise AdmissionTokenInvalid()
    return claims
