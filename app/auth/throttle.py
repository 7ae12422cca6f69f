"""Login protection, with its state in PostgreSQL (table `login_throttles`).

Every scope counts one kind of attempt in a fixed window of its own; the first
attempt after the window ends starts a new one. Five scopes per login:

- **pair** (a student number from one client address): failures, 429 past
  `LOGIN_MAX_FAILURES_PER_CLIENT_AND_STUDENT`. Each attempt reserves its place
  *before* its password is checked, in a short transaction whose upsert locks
  the row, so parallel guesses (on any worker) each see the ones before them and
  at most the limit ever reach bcrypt. A correct password clears it. Guessing
  from one address meets 429 quickly; the owner, from any other address, is
  never refused for it.
- **client** (an address, any student): failures, 429 past
  `LOGIN_MAX_FAILURES_PER_CLIENT`. Counted once the password proved wrong:
  a campus behind one NAT address has hundreds of correct logins in progress at
  once, and must not be refused for them. The price: guesses from one client in
  progress together are all checked before their failures land, so the limit
  can be overshot by what one client has past the login turns at once.
- **student** (a student number, or a staff username in scopes of its own, every address): failures, reserved before
  bcrypt like the pair's (a correct password gives its reservation back). Never
  a 429: past `LOGIN_STUDENT_FAILURES_BEFORE_SLOWDOWN` each attempt waits before
  its login turn, `slowdown()` seconds (doubling, capped). Guesses spread over
  many addresses slow down; the owner still gets in, a few seconds later.
- **student-logins** and **client-logins**: successful logins, 429 past
  `LOGIN_MAX_SUCCESSES_PER_STUDENT` / `..._PER_CLIENT` in
  `LOGIN_SUCCESS_WINDOW_SECONDS`. Counted after the password matched, so only
  someone who knows the password can use them up; checked again once a login
  has its turn, so the overshoot is at most the logins past the turns at once
  (LOGIN_TURNS per worker).

A refused attempt counts nowhere. Lock order, on every path: pair, student,
student-logins, client-logins, client (app/auth/service.py).
"""

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth.errors import TooManyLoginAttempts
from app.auth.models import LoginThrottle
from app.core.config import Settings
from app.core.db import rows_affected

# Keys longer than this are hashed: a client address can be anything a trusted
# proxy forwarded, and the scope column holds at most 300 characters.
_LONGEST_PLAIN_KEY = 100

_FAILED = "Too many failed logins; try again later"
_SUCCEEDED = "Too many logins; try again later"


@dataclass(frozen=True, slots=True)
class ThrottleScope:
    key: str
    limit: int  # attempts in a window; at it, the scope refuses (or, for the student, slows down)
    window: timedelta
    refusal: str = _FAILED


@dataclass(frozen=True, slots=True)
class LoginScopes:
    pair: ThrottleScope
    client: ThrottleScope
    student: ThrottleScope
    student_logins: ThrottleScope
    client_logins: ThrottleScope

    @property
    def all(self) -> tuple[ThrottleScope, ...]:
        return (self.pair, self.client, self.student, self.student_logins, self.client_logins)

    @property
    def refusing(self) -> tuple[ThrottleScope, ...]:
        """The scopes that answer 429 at their limit (the student's slows down instead)."""
        return (self.pair, self.client, self.student_logins, self.client_logins)


@dataclass(frozen=True, slots=True)
class Count:
    attempts: int
    window_ends_at: datetime


def login_scopes(
    *, account: str, client_address: str, settings: Settings, account_kind: str = "student"
) -> LoginScopes:
    """The scopes of one login. An account is a student number or a staff username
    ("staff:registrar"): each kind counts in scopes of its own, with the same limits,
    so a student number can never spend a staff member's attempts. (The fields keep
    the student's names: `student` is the account's scope, whatever its kind.)"""
    failures = timedelta(seconds=settings.login_failure_window_seconds)
    successes = timedelta(seconds=settings.login_success_window_seconds)
    # A student's keys are as they were before staff accounts existed.
    who = account if account_kind == "student" else f"{account_kind}:{account}"
    pair = json.dumps([who, client_address])  # unambiguous whatever either holds
    return LoginScopes(
        pair=ThrottleScope(_scope_key("pair", pair), settings.login_max_failures_per_client_and_student, failures),
        client=ThrottleScope(_scope_key("client", client_address), settings.login_max_failures_per_client, failures),
        student=ThrottleScope(
            _scope_key(account_kind, account), settings.login_student_failures_before_slowdown, failures
        ),
        student_logins=ThrottleScope(
            _scope_key(f"{account_kind}-logins", account),
            settings.login_max_successes_per_student,
            successes,
            _SUCCEEDED,
        ),
        client_logins=ThrottleScope(
            _scope_key("client-logins", client_address), settings.login_max_successes_per_client, successes, _SUCCEEDED
        ),
    )


def _scope_key(kind: str, value: str) -> str:
    if len(value) > _LONGEST_PLAIN_KEY:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return f"{kind}:{value}"


def slowdown(failures: int, *, before: int, first_seconds: float, max_seconds: float) -> float:
    """Seconds an attempt waits when the student already has `failures` in the window:
    none below `before`, then `first_seconds`, doubling with each failure, at most `max_seconds`."""
    beyond = failures - before
    if beyond < 0:
        return 0.0
    return min(first_seconds * 2.0 ** min(beyond, 32), max_seconds)


def student_slowdown(counts: dict[str, Count], scopes: LoginScopes, settings: Settings) -> float:
    seen = counts.get(scopes.student.key)
    return slowdown(
        seen.attempts if seen else 0,
        before=scopes.student.limit,
        first_seconds=settings.login_slowdown_first_seconds,
        max_seconds=settings.login_slowdown_max_seconds,
    )


def _seconds_left(scope: ThrottleScope, window_ends_at: datetime, *, now: datetime) -> int:
    """Retry-After for a refusing scope: until its window ends, at least a second.
    Clamped to the window: a concurrent attempt stamped a moment after this one may
    have started it, which then ends a little more than `window` from now."""
    seconds_left = min((window_ends_at - now).total_seconds(), scope.window.total_seconds())
    return max(math.ceil(seconds_left), 1)


def current_counts(db: Session | Connection, scopes: Iterable[ThrottleScope], *, now: datetime) -> dict[str, Count]:
    """The scopes' counts in their current windows, in one statement; a scope with none is left out."""
    rows = db.execute(
        select(LoginThrottle.scope, LoginThrottle.attempts, LoginThrottle.window_ends_at).where(
            LoginThrottle.scope.in_([scope.key for scope in scopes]), LoginThrottle.window_ends_at > now
        )
    )
    return {row.scope: Count(row.attempts, row.window_ends_at) for row in rows}


def ensure_allowed(counts: dict[str, Count], scopes: Iterable[ThrottleScope], *, now: datetime) -> None:
    """Raise TooManyLoginAttempts when one of the scopes is at its limit, with
    Retry-After until the last of those refusing ends."""
    refusing = [
        (scope, count)
        for scope in scopes
        if (count := counts.get(scope.key)) is not None and count.attempts >= scope.limit
    ]
    if refusing:
        scope, count = max(refusing, key=lambda found: _seconds_left(found[0], found[1].window_ends_at, now=now))
        raise TooManyLoginAttempts(_seconds_left(scope, count.window_ends_at, now=now), detail=scope.refusal)


def reserve_attempt(session: Session, scope: ThrottleScope, *, now: datetime) -> None:
    """Count one attempt before its password is checked, or raise TooManyLoginAttempts.

    Run it in a short transaction and commit at once: the scope's row stays
    locked until then. A refused attempt raises, and its rollback leaves the
    count as it was.
    """
    count = add_attempt(session, scope, now=now)
    if count.attempts > scope.limit:
        raise TooManyLoginAttempts(_seconds_left(scope, count.window_ends_at, now=now), detail=scope.refusal)


def add_attempt(session: Session, scope: ThrottleScope, *, now: datetime) -> Count:
    """Add one to the scope's count in its current window (or start a new window);
    return the new count. One atomic upsert."""
    current = LoginThrottle.__table__.c
    in_window = current.window_ends_at > now
    statement = insert(LoginThrottle).values(scope=scope.key, attempts=1, window_ends_at=now + scope.window)
    row = session.execute(
        statement.on_conflict_do_update(
            index_elements=[LoginThrottle.scope],
            set_={
                "attempts": case((in_window, current.attempts + 1), else_=1),
                "window_ends_at": case((in_window, current.window_ends_at), else_=now + scope.window),
            },
        ).returning(LoginThrottle.attempts, LoginThrottle.window_ends_at)
    ).one()
    return Count(row.attempts, row.window_ends_at)


def give_back_attempt(session: Session, scope: ThrottleScope, *, now: datetime) -> None:
    """Undo one reserved attempt (its password matched), in the window it was counted in."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.scope == scope.key, LoginThrottle.window_ends_at > now, LoginThrottle.attempts > 0)
        .values(attempts=LoginThrottle.attempts - 1)
    )


def clear(session: Session, scope: ThrottleScope) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope.key))


def purge_stale(session: Session, *, now: datetime) -> int:
    """Delete every scope whose window has ended (it would start afresh anyway)."""
    with session.begin():
        return rows_affected(session.execute(delete(LoginThrottle).where(LoginThrottle.window_ends_at <= now)))
