import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class Student(TimestampMixin, Base):
    """A student. Its row is also the student's lock: every change to what the
    registration rules read about a student (registrations, holds, transcript,
    appointments, limit) first takes `SELECT ... FOR NO KEY UPDATE` on it."""

    __tablename__ = "students"
    __table_args__ = (CheckConstraint("max_credits BETWEEN 0 AND 60", name="max_credits_in_range"),)

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    student_number: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    # NULL: the DEFAULT_MAX_CREDITS setting applies.
    max_credits: Mapped[int | None] = mapped_column(SmallInteger)


class CompletedCourse(Base):
    """The transcript prerequisites are checked against: course codes."""

    __tablename__ = "student_completed_courses"

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    course_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StudentHold(Base):
    """An administrative hold: while active (not lifted), registering is refused; dropping never is."""

    __tablename__ = "student_holds"
    __table_args__ = (Index("ix_student_holds_active", "student_id", postgresql_where=text("lifted_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    placed_by: Mapped[str | None] = mapped_column(String(100))
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lifted_by: Mapped[str | None] = mapped_column(String(100))


class StudentTerm(Base):
    """A student in one semester: their registration appointment and the credits
    of their ENROLLED and RESERVED registrations there, kept as a counter (changed
    only under the student's lock), so the credit limit is checked in O(1)."""

    __tablename__ = "student_terms"
    __table_args__ = (
        CheckConstraint("credits >= 0", name="credits_non_negative"),
        # A waiting-room ticket is one place: never two students on one. The index also
        # walks a semester's waiting tickets in order (the frontier, app/waiting_room/service.py).
        UniqueConstraint("semester_id", "queue_ticket"),
    )

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    semester_id: Mapped[int] = mapped_column(ForeignKey("semesters.id", ondelete="CASCADE"), primary_key=True)
    credits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # NULL: registration opens for this student with the semester.
    registration_opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The student's place in the semester's waiting room (app/waiting_room/): a ticket from
    # the `waiting_room_tickets` sequence, issued once; NULL: never asked for one.
    queue_ticket: Mapped[int | None] = mapped_column(BigInteger)
