"""Staff accounts: login (the same password path as students), lookups, creation."""

import uuid
from datetime import datetime

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.auth.errors import InvalidToken
from app.auth.service import IssuedTokens, check_password, start_session
from app.core.config import Settings
from app.core.security import SubjectKind, hash_password
from app.staff.errors import StaffUsernameTaken
from app.staff.models import StaffAccount, StaffRole
from app.staff.schemas import StaffRead


def login(
    session: Session,
    *,
    username: str,
    password: str,
    client_address: str,
    settings: Settings,
    now: datetime,
) -> IssuedTokens:
    """POST /auth/staff/login: bcrypt on its own threads, the dummy hash for an unknown
    username, the login throttle in `staff:<username>` scopes; then a refresh-token family."""
    account = check_password(
        session,
        account_kind=SubjectKind.STAFF,
        login=username,
        find_account=lambda s: s.scalar(select(StaffAccount).where(StaffAccount.username == username)),
        password=password,
        client_address=client_address,
        settings=settings,
        now=now,
    )
    return start_session(session, account, settings=settings, now=now)


_STAFF = select(StaffAccount.id, StaffAccount.username, StaffAccount.name, StaffAccount.role).where(
    StaffAccount.id == bindparam("staff")
)


def get_staff(engine: Engine, *, staff_id: uuid.UUID) -> StaffRead:
    """One autocommit read; InvalidToken when the account named by a token is gone."""
    with engine.connect() as connection:
        row = connection.execute(_STAFF, {"staff": staff_id}).one_or_none()
    if row is None:
        raise InvalidToken("The staff account in this token no longer exists")
    return StaffRead.model_validate(row, from_attributes=True)


def create_staff(
    session: Session, *, username: str, name: str, role: StaffRole, password: str, bcrypt_rounds: int
) -> StaffRead:
    """A new account; StaffUsernameTaken when the username exists (checked by the insert
    itself, so two operators creating the same name at once cannot both succeed)."""
    password_hash = hash_password(password, rounds=bcrypt_rounds)  # before the transaction: no lock held meanwhile
    with session.begin():
        row = session.execute(
            insert(StaffAccount)
            .values(username=username, name=name, role=role.value, password_hash=password_hash)
            .on_conflict_do_nothing(index_elements=[StaffAccount.username])
            .returning(StaffAccount.id, StaffAccount.username, StaffAccount.name, StaffAccount.role)
        ).one_or_none()
    if row is None:
        raise StaffUsernameTaken()
    return StaffRead.model_validate(row, from_attributes=True)
