"""Brute-force protection for login, with its state in PostgreSQL.

Failures are counted per scope in a fixed window. A scope that reaches its limit
is blocked until its window ends; then the next attempt starts a fresh window.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth.models import LoginThrottle
from app.core.config import Settings
from app.core.errors import TooManyLoginAttempts


@dataclass(frozen=True, slots=True)
class ThrottleScope:
    key: str
    max_failures: int


def login_scopes(*, student_number: str, client_address: str, settings: Settings) -> list[ThrottleScope]:
    return [
        ThrottleScope(f"student:{student_number}", settings.login_max_failures_per_student),
        ThrottleScope(f"client:{client_address}", settings.login_max_failures_per_client),
    ]


def ensure_not_blocked(session: Session, scopes: list[ThrottleScope], *, now: datetime) -> None:
    blocked_until = session.scalar(
        select(func.max(LoginThrottle.blocked_until)).where(
            LoginThrottle.scope.in_([scope.key for scope in scopes]), LoginThrottle.blocked_until > now
        )
    )
    if blocked_until is not None:
        raise TooManyLoginAttempts(retry_after_seconds=max(1, math.ceil((blocked_until - now).total_seconds())))


def record_failure(session: Session, scopes: list[ThrottleScope], *, now: datetime, window: timedelta) -> None:
    """Count one failure in each scope; one upsert per scope, atomic across workers."""
    for scope in scopes:
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
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[LoginThrottle.scope],
                set_={
                    "failures": failures,
                    "window_started_at": window_start,
                    "blocked_until": case((failures >= scope.max_failures, window_start + window), else_=None),
                },
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
