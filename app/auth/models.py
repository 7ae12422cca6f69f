from datetime import datetime

from sqlalchemy import DateTime, Integer, String
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
