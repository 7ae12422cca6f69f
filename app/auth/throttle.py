"""Brute-force protection for login, with its state in PostgreSQL.

Failed logins are counted per scope in a fixed window, and past a scope's limit
logins answer 429 until the window ends; the next attempt after that starts a
fresh window. Two scopes, counted differently:

- A student number (or a staff username, in scopes of their own): each attempt
  reserves its place in the count *before* its password is checked, in one
  short transaction whose upsert locks the scope's row, so concurrent guesses
  (on any worker) each see the ones before them, and at most `max_failures` per
  window ever reach bcrypt. A correct password clears the count. No real
  student logs in many times at once, so nobody is refused for attempts still
  in progress.
- A client address: only failures count, recorded once the password proved
  wrong. A campus behind one NAT address (or a load test) may have hundreds of
  correct logins in progress at once, and must not be refused for them. The
  price: guesses from one client that are in progress together are all checked
  before their failures land, so the limit can be overshot by what one client
  has in flight at once, which the request threadpool bounds.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth.errors import TooManyLoginAttempts
from app.auth.models import LoginThrottle
from app.core.config import Settings
from app.core.db import rows_affected

# Keys longer than this are hashed: a client address can be anything a trusted
# proxy forwarded, and the scope column holds at most 300 characters.
_LONGEST_PLAIN_KEY = 100


@dataclass(frozen=True, slots=True)
class ThrottleScope:
    key: str
    max_failures: int


def login_scopes(
    *, account: str, client_address: str, settings: Settings, account_kind: str = "student"
) -> tuple[ThrottleScope, ThrottleScope]:
    """The account's scope and the client's. An account is a student number
    ("student:STU10000") or a staff username ("staff:registrar"): each kind counts
    apart, with the same limit, so a student number can never spend a staff
    member's attempts."""
    return (
        ThrottleScope(_scope_key(account_kind, account), settings.login_max_failures_per_student),
        ThrottleScope(_scope_key("client", client_address), settings.login_max_failures_per_client),
    )


def _scope_key(kind: str, value: str) -> str:
    if len(value) > _LONGEST_PLAIN_KEY:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return f"{kind}:{value}"


def _seconds_left(window_started_at: datetime, *, now: datetime, window: timedelta) -> int:
    """Retry-After for a blocked scope: until its window ends, at least a second.
    Clamped to the window: a concurrent attempt stamped a moment after this one may
    have started it, which then ends a little more than `window` from now."""
    seconds_left = min((window_started_at + window - now).total_seconds(), window.total_seconds())
    return max(math.ceil(seconds_left), 1)


def ensure_allowed(session: Session, scope: ThrottleScope, *, now: datetime, window: timedelta) -> None:
    """Raise TooManyLoginAttempts while the scope's failures in this window are at its limit."""
    row = session.execute(
        select(LoginThrottle.failures, LoginThrottle.window_started_at).where(
            LoginThrottle.scope == scope.key, LoginThrottle.window_started_at > now - window
        )
    ).one_or_none()
    if row is not None and row.failures >= scope.max_failures:
        raise TooManyLoginAttempts(_seconds_left(row.window_started_at, now=now, window=window))


def reserve_attempt(session: Session, scope: ThrottleScope, *, now: datetime, window: timedelta) -> None:
    """Count one attempt before its password is checked, or raise TooManyLoginAttempts.

    Run it in a short transaction and commit at once: the scope's row stays
    locked until then. A refused attempt raises, and its rollback leaves the
    count as it was.
    """
    failures, window_started_at = record_failure(session, scope, now=now, window=window)
    if failures > scope.max_failures:
        raise TooManyLoginAttempts(_seconds_left(window_started_at, now=now, window=window))


def record_failure(session: Session, scope: ThrottleScope, *, now: datetime, window: timedelta) -> tuple[int, datetime]:
    """Add one to the scope's count in its current window (or start a new window);
    return the new count and when its window started. One atomic upsert."""
    current = LoginThrottle.__table__.c
    in_window = current.window_started_at > now - window
    failures = case((in_window, current.failures + 1), else_=1)
    window_start = case((in_window, current.window_started_at), else_=now)
    statement = insert(LoginThrottle).values(
        scope=scope.key,
        failures=1,
        window_started_at=now,
        blocked_until=now + window if scope.max_failures <= 1 else None,
    )
    row = session.execute(
        statement.on_conflict_do_update(
            index_elements=[LoginThrottle.scope],
            set_={
                "failures": failures,
                "window_started_at": window_start,
                # For operators and the purge: when the scope's last allowed attempt is spent.
                "blocked_until": case((failures >= scope.max_failures, window_start + window), else_=None),
            },
        ).returning(LoginThrottle.failures, LoginThrottle.window_started_at)
    ).one()
    return row.failures, row.window_started_at


def clear(session: Session, scope: ThrottleScope) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope.key))


def purge_stale(session: Session, *, now: datetime, window: timedelta) -> int:
    with session.begin():
        stale = delete(LoginThrottle).where(
            LoginThrottle.window_started_at <= now - window,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until <= now),
        )
        return rows_affected(session.execute(stale))
