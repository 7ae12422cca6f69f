import enum
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Identity,
    Integer,
    UniqueConstraint,
)
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
