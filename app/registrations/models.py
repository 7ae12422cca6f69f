import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class RegistrationStatus(enum.StrEnum):
    ENROLLED = "ENROLLED"
    RESERVED = "RESERVED"


class CourseRegistration(TimestampMixin, Base):
    __tablename__ = "course_registrations"
    __table_args__ = (
        UniqueConstraint("student_id", "course_id"),
        # Checked at the end of each statement, so one UPDATE can shift a whole
        # reserve list up by one without tripping over its own intermediate rows.
        UniqueConstraint("course_id", "reserve_position", deferrable=True, initially="IMMEDIATE"),
        # IS NOT NULL is needed: a NULL comparison is unknown, and unknown passes a check.
        CheckConstraint(
            "(status = 'ENROLLED' AND reserve_position IS NULL)"
            " OR (status = 'RESERVED' AND reserve_position IS NOT NULL AND reserve_position >= 1)",
            name="position_iff_reserved",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    status: Mapped[RegistrationStatus] = mapped_column(Enum(RegistrationStatus, name="registration_status"))
    reserve_position: Mapped[int | None] = mapped_column(Integer)
    # The course's credits when the student registered: a drop gives back exactly these.
    credits: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class EventType(enum.StrEnum):
    ENROLLED = "ENROLLED"
    RESERVED = "RESERVED"
    PROMOTED = "PROMOTED"  # from reserve position 1 (after a drop) or the head (after a capacity raise)
    DROPPED = "DROPPED"
    SWAPPED = "SWAPPED"  # dropped as part of a swap; `details.to_course_id` names the new course
    CANCELLED = "CANCELLED"  # the course was cancelled: the registration ended
    CAPACITY_CHANGED = "CAPACITY_CHANGED"
    HOLD_PLACED = "HOLD_PLACED"
    HOLD_LIFTED = "HOLD_LIFTED"


class RegistrationEvent(Base):
    """The audit trail: append-only, written in the same transaction as the change.

    Reserve positions are not events: they follow from the order of events (a
    drop does not write one row per student who moves up). No foreign keys: the
    trail outlives what it describes.
    """

    __tablename__ = "registration_events"
    __table_args__ = (
        Index("ix_registration_events_course", "course_id", "id"),
        Index("ix_registration_events_student", "student_id", "semester_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    event_type: Mapped[EventType] = mapped_column(Enum(EventType, name="registration_event_type"))
    semester_id: Mapped[int | None] = mapped_column(Integer)
    course_id: Mapped[int | None] = mapped_column(Integer)
    student_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # "student:<id>", "staff:<username>" or "system".
    actor: Mapped[str] = mapped_column(String(150))
    request_id: Mapped[str | None] = mapped_column(String(100))
    reserve_position: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
