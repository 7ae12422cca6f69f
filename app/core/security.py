"""Password hashing (bcrypt) and access tokens (PyJWT, HS256) for students and staff."""

import contextlib
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import ClassVar, TypeAlias

import bcrypt
import jwt

from app.auth.errors import InvalidToken
from app.core.config import Settings

# Pinned server-side: a token never chooses its own algorithm (no `alg=none`, no RS/HS confusion).
JWT_ALGORITHM = "HS256"
BCRYPT_MAX_PASSWORD_BYTES = 72

# A password check holds a core for 0.2-0.3 s at cost 12 (bcrypt releases the GIL).
# Checks run on threads of their own, one per core, at a lower CPU priority: a
# login storm queues here and uses the CPU that serving requests leaves idle,
# instead of dozens of hashes at once starving every other request (see
# docs/performance.md, "Login storm").
PASSWORD_CHECK_NICENESS = 10
PASSWORD_CHECK_THREADS = os.cpu_count() or 1
# Logins a worker lets in at once (app/auth/dependencies.py): every password-check
# thread busy, and one more login per thread ready to take its place.
LOGIN_TURNS = 2 * PASSWORD_CHECK_THREADS


def _lower_thread_priority() -> None:
    # Linux: niceness is per thread; elsewhere, checks simply run at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_CHECK_NICENESS)


_password_checks = ThreadPoolExecutor(
    max_workers=PASSWORD_CHECK_THREADS, thread_name_prefix="password-check", initializer=_lower_thread_priority
)


def hash_password(password: str, *, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    encoded = password.encode()
    # bcrypt 5 raises on longer input instead of truncating; such a password never matches.
    if len(encoded) > BCRYPT_MAX_PASSWORD_BYTES:
        return False
    return _password_checks.submit(bcrypt.checkpw, encoded, password_hash.encode()).result()


@lru_cache
def dummy_password_hash(rounds: int) -> str:
    """A hash to check against when the student number (or staff username) is
    unknown, so that an unknown account costs the same time as a wrong password."""
    return hash_password("not-a-real-password", rounds=rounds)


class SubjectKind(StrEnum):
    """Who a token (access or refresh) was issued to: the `kind` claim."""

    STUDENT = "student"
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class StudentSubject:
    """What a verified student token says about its bearer; no database round trip needed."""

    student_id: uuid.UUID
    student_number: str
    expires_at: int  # the token's `exp`, in seconds since the epoch
    kind: ClassVar[SubjectKind] = SubjectKind.STUDENT

    @property
    def subject_id(self) -> uuid.UUID:
        return self.student_id


@dataclass(frozen=True, slots=True)
class StaffSubject:
    """What a verified staff token says: the account and its role when the token was issued."""

    staff_id: uuid.UUID
    username: str
    role: str  # a StaffRole value (app/staff/models.py); checked against the account once per token
    expires_at: int
    kind: ClassVar[SubjectKind] = SubjectKind.STAFF

    @property
    def subject_id(self) -> uuid.UUID:
        return self.staff_id


# A token's bearer is a student or a staff member, never both: the `kind` claim says which,
# and CurrentStudent / CurrentStaff (app/auth/dependencies.py) accept one kind each.
TokenSubject: TypeAlias = StudentSubject | StaffSubject


def _encode(claims: dict[str, str], *, settings: Settings, now: datetime | None) -> str:
    issued_at = now or datetime.now(UTC)
    payload = {
        **claims,
        "iat": issued_at,
        "exp": issued_at + timedelta(minutes=settings.access_token_expire_minutes),
    }
    return jwt.encode(payload, settings.secret_key, algorithm=JWT_ALGORITHM)


def create_access_token(
    *, student_id: uuid.UUID, student_number: str, settings: Settings, now: datetime | None = None
) -> str:
    claims = {"sub": str(student_id), "kind": SubjectKind.STUDENT.value, "student_number": student_number}
    return _encode(claims, settings=settings, now=now)


def create_staff_access_token(
    *, staff_id: uuid.UUID, username: str, role: str, settings: Settings, now: datetime | None = None
) -> str:
    claims = {"sub": str(staff_id), "kind": SubjectKind.STAFF.value, "username": username, "role": role}
    return _encode(claims, settings=settings, now=now)


def decode_access_token(token: str, *, settings: Settings) -> TokenSubject:
    try:
        payload = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
        subject_id = uuid.UUID(payload["sub"])
        expires_at = int(payload["exp"])
        # No `kind`: a student token signed before staff tokens existed (they live
        # ACCESS_TOKEN_EXPIRE_MINUTES), so a deploy logs nobody out mid-rush. Only
        # our key signs tokens, and that code issued student tokens only.
        kind = payload.get("kind", SubjectKind.STUDENT.value)
        if kind == SubjectKind.STUDENT:
            return StudentSubject(
                student_id=subject_id, student_number=str(payload.get("student_number", "")), expires_at=expires_at
            )
        if kind == SubjectKind.STAFF and isinstance(payload.get("role"), str):
            return StaffSubject(
                staff_id=subject_id,
                username=str(payload.get("username", "")),
                role=payload["role"],
                expires_at=expires_at,
            )
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise InvalidToken() from exc
    raise InvalidToken()  # a kind we never issue, or a staff token without its role


class AccessTokens:
    """Verifies access tokens, remembering the ones it has verified until they expire.

    A client sends the same token with every request until it expires,
    and verifying one (an HMAC, base64 and JSON decoding, claim checks) was a
    tenth of the CPU of an authenticated read here. A token verified once is
    remembered with its subject; a repeat costs a dictionary lookup and a clock
    read. The key is the whole token, signature included, so only exactly the
    token that was verified is ever accepted from memory. At most `max_entries`
    per process, the least recently used forgotten first.
    """

    def __init__(
        self, settings: Settings, *, max_entries: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: OrderedDict[str, TokenSubject] = OrderedDict()

    def remembered(self, token: str) -> TokenSubject | None:
        """The subject of a token verified before, if it is still valid; None if
        this token was never verified here (or was forgotten)."""
        with self._lock:
            subject = self._verified.get(token)
            if subject is None:
                return None
            if self._clock() < subject.expires_at:
                self._verified.move_to_end(token)
                return subject
            del self._verified[token]
        raise InvalidToken()

    def decode(self, token: str) -> TokenSubject:
        """Check the signature and claims; remembers nothing (see `remember`)."""
        return decode_access_token(token, settings=self._settings)

    def remember(self, token: str, subject: TokenSubject) -> None:
        with self._lock:
            self._verified[token] = subject
            while len(self._verified) > self._max_entries:
                self._verified.popitem(last=False)

    def verify(self, token: str) -> TokenSubject:
        """Remembered, or decoded and remembered."""
        subject = self.remembered(token)
        if subject is None:
            subject = self.decode(token)
            self.remember(token, subject)
        return subject
