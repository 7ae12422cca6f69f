"""Refresh tokens: random, opaque, stored hashed, rotated on every use.

A refresh token is 32 random bytes (URL-safe base64); the table keeps only its
SHA-256, so a copy of the database lets nobody refresh. Every function here runs
inside a transaction its caller (app/auth/service.py) begins.

- A login starts a *family*. Each refresh claims its token and issues the next
  one in the same family: the old token stops working.
- The claim is one statement, `UPDATE ... SET used_at = now WHERE token_hash = h
  AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now RETURNING ...`:
  its row lock makes two refreshes of one token (on any worker) exactly one
  success; the second re-reads the row after the first commits and finds it used.
- A used token presented again is the usual sign of a stolen token (reuse
  detection): the whole family is revoked, the newest token included, and both
  the thief and the owner must log in again. A client that sends the same
  refresh twice at once is treated the same way: refresh once, keep the answer.
- Logout revokes the family of the token it is given.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.auth.models import RefreshToken
from app.core.db import rows_affected
from app.core.security import SubjectKind

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claimed:
    """A token this transaction has just marked used: whom it was issued to."""

    id: int
    family_id: uuid.UUID
    subject_kind: SubjectKind
    subject_id: uuid.UUID


def issue(
    session: Session,
    *,
    subject_kind: SubjectKind,
    subject_id: uuid.UUID,
    family_id: uuid.UUID,
    lifetime: timedelta,
    now: datetime,
) -> tuple[int, str]:
    """Store a new token of the family; return its row id and the token (shown once)."""
    token = new_token()
    token_id = session.execute(
        insert(RefreshToken)
        .values(
            family_id=family_id,
            subject_kind=subject_kind.value,
            subject_id=subject_id,
            token_hash=hash_token(token),
            issued_at=now,
            expires_at=now + lifetime,
        )
        .returning(RefreshToken.id)
    ).scalar_one()
    return token_id, token


def claim(session: Session, *, token_hash: str, now: datetime) -> Claimed | None:
    """Mark the token used if it is live (unused, unrevoked, unexpired); None if it is not.
    Its row stays locked until the transaction ends."""
    row = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.id, RefreshToken.family_id, RefreshToken.subject_kind, RefreshToken.subject_id)
    ).one_or_none()
    if row is None:
        return None
    return Claimed(
        id=row.id, family_id=row.family_id, subject_kind=SubjectKind(row.subject_kind), subject_id=row.subject_id
    )


def mark_replaced(session: Session, *, token_id: int, replaced_by: int) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.id == token_id).values(replaced_by=replaced_by))


def family_of(session: Session, *, token_hash: str, used_only: bool = False) -> uuid.UUID | None:
    query = select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash)
    if used_only:
        query = query.where(RefreshToken.used_at.is_not(None))
    return session.scalar(query)


def revoke_family(session: Session, *, family_id: uuid.UUID, now: datetime) -> int:
    """Revoke every token of the family; return how many were still live.

    Repeated until a statement finds nothing left: a refresh of the family's newest
    token that committed while the first statement waited for its row inserted a
    token that statement's snapshot could not see. A refresh that has not claimed
    yet waits for this transaction's row locks and then finds its token revoked.
    """
    revoked = 0
    while True:
        # The family's rows locked in one order (ascending id) before the update, so
        # two transactions revoking or claiming in one family never wait on each other
        # crosswise (a deadlock seen once under load).
        session.execute(
            select(RefreshToken.id)
            .where(RefreshToken.family_id == family_id)
            .order_by(RefreshToken.id)
            .with_for_update()
        )
        count = rows_affected(
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        )
        if count == 0:
            return revoked
        revoked += count


def purge_expired(session: Session, *, now: datetime) -> int:
    """Delete tokens past their expiry (used, revoked or not): none can ever refresh again."""
    with session.begin():
        # replaced_by points within the family; ON DELETE SET NULL keeps the rest consistent.
        return rows_affected(session.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now)))
