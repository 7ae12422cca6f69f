import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from app.auth import refresh_tokens, throttle
from app.auth.errors import InvalidCredentials, InvalidRefreshToken, InvalidToken
from app.core.config import Settings
from app.core.security import (
    StaffSubject,
    StudentSubject,
    SubjectKind,
    TokenSubject,
    create_access_token,
    create_staff_access_token,
    dummy_password_hash,
    verify_password,
)
from app.staff.models import StaffAccount
from app.students.models import CompletedCourse, Student, StudentHold


class LoginAccount(Protocol):
    @property
    def password_hash(self) -> str: ...


Account = TypeVar("Account", bound=LoginAccount)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a login or a refresh answers: a short-lived access token and the next refresh token."""

    access_token: str
    expires_in: int  # seconds
    refresh_token: str


def login_delay(
    engine: Engine,
    *,
    account: str,
    client_address: str,
    settings: Settings,
    now: datetime,
    account_kind: SubjectKind = SubjectKind.STUDENT,
) -> float:
    """Before a login waits for its turn: one autocommit read of its throttle counts.

    Raise TooManyLoginAttempts at once when a refusing scope is already at its
    limit (no wait, no turn, no password check); otherwise return the seconds the
    attempt must wait first, from the account's failures in the window
    (app/auth/throttle.py). `check_password` checks again, under the row locks, so
    a read that is a moment behind (a standby, attempts landing meanwhile) only
    decides how early a refusal comes and how long the wait is.
    """
    scopes = throttle.login_scopes(
        account=account, client_address=client_address, settings=settings, account_kind=account_kind.value
    )
    with engine.connect() as connection:
        counts = throttle.current_counts(connection, scopes.all, now=now)
    throttle.ensure_allowed(counts, scopes.refusing, now=now)
    return throttle.student_slowdown(counts, scopes, settings)


def check_password(
    session: Session,
    *,
    account_kind: SubjectKind,
    login: str,
    find_account: Callable[[Session], Account | None],
    password: str,
    client_address: str,
    settings: Settings,
    now: datetime,
) -> Account:
    """Return the account (student or staff) whose credentials these are, or raise
    InvalidCredentials (or TooManyLoginAttempts, before any password is checked).

    The one login path for every kind of account: `login` names the throttle
    scope (`student:...`, `staff:...`), `find_account` reads the account inside
    the throttle's first transaction.

    No transaction is open while bcrypt runs: the connection goes back to the
    pool, so a login storm holds no database connection (and no throttle row
    lock) while it burns CPU. What each scope counts: app/auth/throttle.py. Rows
    are locked in one order on every path: pair, account, account-logins,
    client-logins, client.
    """
    scopes = throttle.login_scopes(
        account=login, client_address=client_address, settings=settings, account_kind=account_kind.value
    )
    with session.begin():
        counts = throttle.current_counts(session, (scopes.client, scopes.student_logins, scopes.client_logins), now=now)
        throttle.ensure_allowed(counts, (scopes.client, scopes.student_logins, scopes.client_logins), now=now)
        # Counted as failures up front, so that guesses in parallel cannot all
        # pass a check made before any of them is recorded.
        throttle.reserve_attempt(session, scopes.pair, now=now)
        throttle.add_attempt(session, scopes.student, now=now)
        account = find_account(session)

    # Hash anyway for an unknown account: both failures cost the same time.
    password_hash = account.password_hash if account else dummy_password_hash(settings.bcrypt_rounds)
    password_matches = verify_password(password, password_hash)
    if account is None or not password_matches:
        with session.begin():
            throttle.add_attempt(session, scopes.client, now=now)
        raise InvalidCredentials()  # the pair's and the account's reservations stand as the failure

    with session.begin():
        throttle.clear(session, scopes.pair)  # this address's failures for the account start again
        throttle.give_back_attempt(session, scopes.student, now=now)
        throttle.add_attempt(session, scopes.student_logins, now=now)
        throttle.add_attempt(session, scopes.client_logins, now=now)
    return account


def authenticate(
    session: Session,
    *,
    student_number: str,
    password: str,
    client_address: str,
    settings: Settings,
    now: datetime,
) -> Student:
    """The student whose credentials these are (see `check_password`)."""
    return check_password(
        session,
        account_kind=SubjectKind.STUDENT,
        login=student_number,
        find_account=lambda s: s.scalar(select(Student).where(Student.student_number == student_number)),
        password=password,
        client_address=client_address,
        settings=settings,
        now=now,
    )


def login(
    session: Session,
    *,
    student_number: str,
    password: str,
    client_address: str,
    settings: Settings,
    now: datetime,
) -> IssuedTokens:
    """POST /auth/login: check the password, then start a refresh-token family."""
    student = authenticate(
        session,
        student_number=student_number,
        password=password,
        client_address=client_address,
        settings=settings,
        now=now,
    )
    return start_session(session, student, settings=settings, now=now)


# ---- tokens ------------------------------------------------------------------------------------


def _kind_of(account: Student | StaffAccount) -> SubjectKind:
    return SubjectKind.STUDENT if isinstance(account, Student) else SubjectKind.STAFF


def _access_token(account: Student | StaffAccount, *, settings: Settings, now: datetime) -> str:
    if isinstance(account, Student):
        return create_access_token(
            student_id=account.id, student_number=account.student_number, settings=settings, now=now
        )
    return create_staff_access_token(
        staff_id=account.id, username=account.username, role=account.role, settings=settings, now=now
    )


def _refresh_lifetime(settings: Settings) -> timedelta:
    return timedelta(days=settings.refresh_token_expire_days)


def start_session(
    session: Session, account: Student | StaffAccount, *, settings: Settings, now: datetime
) -> IssuedTokens:
    """After a successful login: an access token, and the first refresh token of a new family."""
    with session.begin():
        _, refresh_token = refresh_tokens.issue(
            session,
            subject_kind=_kind_of(account),
            subject_id=account.id,
            family_id=uuid.uuid4(),
            lifetime=_refresh_lifetime(settings),
            now=now,
        )
    return IssuedTokens(
        access_token=_access_token(account, settings=settings, now=now),
        expires_in=settings.access_token_expire_minutes * 60,
        refresh_token=refresh_token,
    )


def _account(session: Session, kind: SubjectKind, subject_id: uuid.UUID) -> Student | StaffAccount | None:
    if kind == SubjectKind.STUDENT:
        return session.get(Student, subject_id)
    return session.get(StaffAccount, subject_id)


def refresh(session: Session, *, refresh_token: str, settings: Settings, now: datetime) -> IssuedTokens:
    """POST /auth/refresh: rotate the token (one transaction), or raise InvalidRefreshToken.

    A used token presented again revokes its family (committed before the 401);
    so does a token whose student or staff account no longer exists.
    """
    token_hash = refresh_tokens.hash_token(refresh_token)
    rotated: tuple[Student | StaffAccount, str] | None = None
    with session.begin():
        claimed = refresh_tokens.claim(session, token_hash=token_hash, now=now)
        if claimed is None:
            reused_family = refresh_tokens.family_of(session, token_hash=token_hash, used_only=True)
            if reused_family is not None:
                refresh_tokens.revoke_family(session, family_id=reused_family, now=now)
        else:
            account = _account(session, claimed.subject_kind, claimed.subject_id)
            if account is None:
                refresh_tokens.revoke_family(session, family_id=claimed.family_id, now=now)
            else:
                new_id, new_token = refresh_tokens.issue(
                    session,
                    subject_kind=claimed.subject_kind,
                    subject_id=claimed.subject_id,
                    family_id=claimed.family_id,
                    lifetime=_refresh_lifetime(settings),
                    now=now,
                )
                refresh_tokens.mark_replaced(session, token_id=claimed.id, replaced_by=new_id)
                rotated = (account, new_token)
    if rotated is None:
        raise InvalidRefreshToken()
    account, new_token = rotated
    return IssuedTokens(
        access_token=_access_token(account, settings=settings, now=now),
        expires_in=settings.access_token_expire_minutes * 60,
        refresh_token=new_token,
    )


def logout(session: Session, *, refresh_token: str, now: datetime) -> None:
    """POST /auth/logout: revoke the token's family. An unknown token changes nothing
    (and says nothing: the answer is the same). Access tokens already issued stay
    valid until they expire (ACCESS_TOKEN_EXPIRE_MINUTES): they are stateless."""
    with session.begin():
        family_id = refresh_tokens.family_of(session, token_hash=refresh_tokens.hash_token(refresh_token))
        if family_id is not None:
            refresh_tokens.revoke_family(session, family_id=family_id, now=now)


# ---- bearers -----------------------------------------------------------------------------------

_STUDENT_EXISTS = select(Student.id).where(Student.id == bindparam("student"))
_STAFF_ROLE = select(StaffAccount.role).where(StaffAccount.id == bindparam("staff"))


def ensure_student_exists(engine: Engine, student_id: uuid.UUID) -> None:
    """One autocommit statement on the read engine; InvalidToken when the student is gone."""
    with engine.connect() as connection:
        if connection.scalar(_STUDENT_EXISTS, {"student": student_id}) is None:
            raise InvalidToken("The student in this token no longer exists")


def ensure_staff_holds_role(engine: Engine, staff_id: uuid.UUID, role: str) -> None:
    """One autocommit statement on the read engine; InvalidToken when the account is gone
    or no longer has the role its token names (log in again for a token of the new role)."""
    with engine.connect() as connection:
        current_role = connection.scalar(_STAFF_ROLE, {"staff": staff_id})
    if current_role is None:
        raise InvalidToken("The staff account in this token no longer exists")
    if current_role != role:
        raise InvalidToken("The staff account in this token no longer has its role")


def ensure_subject_exists(engine: Engine, subject: TokenSubject) -> None:
    """Checked once per token, the first time a worker sees it (app/auth/dependencies.py)."""
    if isinstance(subject, StudentSubject):
        ensure_student_exists(engine, subject.student_id)
    elif isinstance(subject, StaffSubject):
        ensure_staff_holds_role(engine, subject.staff_id, subject.role)


def get_student(session: Session, *, student_id: uuid.UUID, default_max_credits: int) -> dict[str, Any]:
    """The student, with what the registration rules read about them: their limit,
    transcript and active holds."""
    with session.begin():
        student = session.get(Student, student_id)
        if student is None:
            # A valid signature for a student who no longer exists.
            raise InvalidToken()
        completed = session.scalars(
            select(CompletedCourse.course_code)
            .where(CompletedCourse.student_id == student_id)
            .order_by(CompletedCourse.course_code)
        ).all()
        holds = session.execute(
            select(StudentHold.id, StudentHold.reason, StudentHold.placed_at)
            .where(StudentHold.student_id == student_id, StudentHold.lifted_at.is_(None))
            .order_by(StudentHold.id)
        ).all()
    return {
        "id": student.id,
        "student_number": student.student_number,
        "name": student.name,
        "max_credits": student.max_credits if student.max_credits is not None else default_max_credits,
        "completed_courses": list(completed),
        "holds": [hold._asdict() for hold in holds],
    }
