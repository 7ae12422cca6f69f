from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class LoginThrottle(Base):
    """Failed logins per scope ("student:STU10000" or "client:10.0.0.7") in a fixed window.

    Kept in PostgreSQL so that every worker process and replica sees the same counts.
    """

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when failures reach the limit: logins in this scope answer 429 until then.
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
