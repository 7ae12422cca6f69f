"""Brute-force protection for login, with its state in PostgreSQL.

Attempts are counted per scope (a student number, a client address) in a fixed
window. Each attempt reserves its place in the count *before* its password is
checked, in one short transaction: the upsert locks the scope's row until
commit, so concurrent attempts (on any worker) queue there for a moment and
each sees the ones before it. At most `max_failures` attempts per window get as
far as bcrypt; the rest are refused with 429 until the window ends, and the next
attempt after that starts a fresh window. A correct password gives its
reservation back.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth.models import LoginThrottle
from app.core.config import Settings
from app.core.errors import TooManyLoginAttempts


@dataclass(frozen=True, slots=True)
class ThrottleScope:
    key: str
    max_failures: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """One attempt counted in one scope's window, until its password proves right."""

    scope: ThrottleScope
    window_started_at: datetime


def login_scopes(*, student_number: str, client_address: str, settings: Settings) -> list[ThrottleScope]:
    # Always this order: every transaction locks the student's row before the client's (no deadlocks).
    return [
        ThrottleScope(f"student:{student_number}", settings.login_max_failures_per_student),
        ThrottleScope(f"client:{client_address}", settings.login_max_failures_per_client),
    ]


def reserve_attempt(
    session: Session, scopes: list[ThrottleScope], *, now: datetime, window: timedelta
) -> list[Reservation]:
    """Count one attempt in every scope, or raise TooManyLoginAttempts.

    Run it in a transaction of its own and commit at once: the rows stay locked
    until then. A refused attempt raises, so its rollback leaves every count as it
    was: attempts that are refused never count against the other scope.
    """
    reservations, retry_after = [], 0
    for scope in scopes:
        failures, window_started_at = record_failure(session, scope, now=now, window=window)
        if failures > scope.max_failures:
            # Clamped: a concurrent attempt stamped a moment after this one may have
            # started the window, which then ends a little more than `window` from now.
            seconds_left = min((window_started_at + window - now).total_seconds(), window.total_seconds())
            retry_after = max(retry_after, math.ceil(seconds_left), 1)
        reservations.append(Reservation(scope, window_started_at))
    if retry_after:
        raise TooManyLoginAttempts(retry_after_seconds=retry_after)
    return reservations


def record_failure(
    session: Session, scope: ThrottleScope, *, now: datetime, window: timedelta
) -> tuple[int, datetime]:
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


def give_back(session: Session, reservation: Reservation) -> None:
    """Uncount an attempt whose password was right, unless its window has ended since."""
    current = LoginThrottle.__table__.c
    session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.scope == reservation.scope.key,
            LoginThrottle.window_started_at == reservation.window_started_at,
            LoginThrottle.failures > 0,
        )
        .values(
            failures=current.failures - 1,
            blocked_until=case(
                (current.failures - 1 >= reservation.scope.max_failures, current.blocked_until), else_=None
            ),
        )
    )


def clear(session: Session, scope: ThrottleScope) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope.key))


def purge_stale(session: Session, *, now: datetime, window: timedelta) -> int:
    with session.begin():
        return session.execute(
            delete(LoginThrottle).where(
                LoginThrottle.window_started_at <= now - window,
                (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until <= now),
            )
        ).rowcount
