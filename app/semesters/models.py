from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Identity, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class Semester(TimestampMixin, Base):
    __tablename__ = "semesters"
    __table_args__ = (CheckConstraint("registration_start < registration_end", name="registration_window_order"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Registration is open for start <= now < end.
    registration_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registration_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
