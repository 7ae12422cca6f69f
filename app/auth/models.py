import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class LoginThrottle(Base):
    """Login attempts of one kind counted per scope in a fixed window, e.g.
    'pair:["STU10000","10.0.0.7"]' (failures of a student from one address),
    "student:STU10000", "client:10.0.0.7", "student-logins:STU10000" (app/auth/throttle.py).

    Kept in PostgreSQL so that every worker process and replica sees the same counts.
    """

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    # The count applies until then; the next attempt after it starts a new window.
    # Indexed for the purge (scripts/purge_expired.py).
    window_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RefreshToken(Base):
    """One refresh token, stored as the SHA-256 of the token (never the token itself).

    A login starts a family; each refresh marks its token used (`used_at`,
    `replaced_by`) and issues the next one in the same family. A used token
    presented again revokes the whole family (`revoked_at` on every row), as does
    logout. The subject is a student or a staff account (no foreign key: either
    table); a refresh checks that it still exists. See app/auth/refresh_tokens.py.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        CheckConstraint("subject_kind IN ('student', 'staff')", name="subject_kind_known"),
        # For revoking everything of one account (a password change, an operator's action).
        Index("ix_refresh_tokens_subject", "subject_kind", "subject_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # a SubjectKind value (app/core/security.py)
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("refresh_tokens.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
