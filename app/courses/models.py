from sqlalchemy import CheckConstraint, ForeignKey, Identity, Integer, String, UniqueConstraint
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class Course(TimestampMixin, Base):
    __tablename__ = "courses"
    __table_args__ = (
        UniqueConstraint("semester_id", "course_name"),
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
    enrolled_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reserved_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @hybrid_property
    def available_seats(self) -> int:  # also a SQL expression: Course.available_seats
        return self.max_capacity - self.enrolled_count
