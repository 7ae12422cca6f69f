"""Idempotency-Key: a retried register or drop replays its first success.

Callers look the key up and store the response inside the same transaction as
the change itself, after taking the course lock. So a retry either finds the
stored response or runs first; a response is never stored for a change that
rolled back, and errors (409, 5xx) are never stored at all.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.db import rows_affected
from app.idempotency.errors import IdempotencyKeyReused
from app.idempotency.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    student_id: uuid.UUID
    key: str
    fingerprint: str


def find_stored_response(session: Session, request: IdempotentRequest, *, now: datetime) -> dict[str, Any] | None:
    stored = session.execute(
        select(IdempotencyKey.request_fingerprint, IdempotencyKey.response_body).where(
            IdempotencyKey.student_id == request.student_id,
            IdempotencyKey.key == request.key,
            IdempotencyKey.expires_at > now,
        )
    ).one_or_none()
    if stored is None:
        return None
    if stored.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    body: dict[str, Any] = stored.response_body
    return body


def store_response(
    session: Session, request: IdempotentRequest, *, body: dict[str, Any], now: datetime, ttl: timedelta
) -> None:
    """Remember a successful response; an expired entry under the same key is replaced."""
    statement = insert(IdempotencyKey).values(
        student_id=request.student_id,
        key=request.key,
        request_fingerprint=request.fingerprint,
        response_status=200,
        response_body=body,
        expires_at=now + ttl,
    )
    stored = session.execute(
        statement.on_conflict_do_update(
            index_elements=[IdempotencyKey.student_id, IdempotencyKey.key],
            set_={
                column: statement.excluded[column]
                for column in ("request_fingerprint", "response_status", "response_body", "expires_at")
            },
            where=IdempotencyKey.expires_at <= now,
        ).returning(IdempotencyKey.key)
    ).one_or_none()
    if stored is None:
        # A live entry appeared meanwhile: the same key used at once for another course.
        raise IdempotencyKeyReused()


def purge_expired(session: Session, *, now: datetime) -> int:
    with session.begin():
        expired = delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
        return rows_affected(session.execute(expired))
