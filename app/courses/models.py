from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Identity, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class Course(TimestampMixin, Base):
    __tablename__ = "courses"
    __table_args__ = (
        UniqueConstraint("semester_id", "course_name"),
        UniqueConstraint("semester_id", "code"),
        CheckConstraint("credits BETWEEN 0 AND 12", name="credits_in_range"),
        CheckConstraint("jsonb_typeof(meetings) = 'array'", name="meetings_is_a_list"),
        CheckConstraint("max_capacity >= 0", name="max_capacity_non_negative"),
        CheckConstraint("reserve_limit >= 0", name="reserve_limit_non_negative"),
        # The counters are the O(1) view of the registration rows: registering reads
        # and bumps them under the course lock instead of counting rows. The database
        # refuses any write that would over-fill the course or its reserve list.
        CheckConstraint("enrolled_count >= 0 AND enrolled_count <= max_capacity", name="enrolled_within_capacity"),
        CheckConstraint("reserved_count >= 0 AND reserved_count <= reserve_limit", name="reserved_within_limit"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    # Indexed by the (semester_id, course_name) unique constraint.
    semester_id: Mapped[int] = mapped_column(ForeignKey("semesters.id", ondelete="CASCADE"))
    course_name: Mapped[str] = mapped_column(String(200))
    professor: Mapped[str] = mapped_column(String(200))
    schedule: Mapped[str] = mapped_column(String(200))
    max_capacity: Mapped[int] = mapped_column(Integer)
    reserve_limit: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    # The student's side of registering (app/registrations/rules.py).
    code: Mapped[str] = mapped_column(String(20))
    credits: Mapped[int] = mapped_column(SmallInteger, default=3, server_default="3")
    # [{"day": "MON", "start": "09:00", "end": "10:30"}, ...]; `schedule` is their text.
    meetings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    # Codes of the courses a student must have completed.
    prerequisites: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list, server_default="{}")
    # Set by a registrar's cancel: every registration ended, new ones refused.
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enrolled_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reserved_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @hybrid_property
    def available_seats(self) -> int:  # also a SQL expression: Course.available_seats
        return self.max_capacity - self.enrolled_count
