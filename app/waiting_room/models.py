"""The waiting room of a semester: its switch, its pace and its frontier.

A student's place is a ticket from one PostgreSQL sequence (`waiting_room_tickets`,
shared by every room), kept in their `student_terms.queue_ticket`
(app/students/models.py): asking again gives the same ticket, and a place costs one
`nextval` and an upsert of that row. Admission follows tickets in order: a ticket is
admitted once it is at most the room's `admitted_through`, which every worker of
every node advances through this one row (app/waiting_room/service.py).
"""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Sequence, func
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin

# Every room's tickets: one sequence, so places are unique and follow arrival order.
TICKETS = Sequence("waiting_room_tickets", metadata=Base.metadata)


class WaitingRoom(TimestampMixin, Base):
    __tablename__ = "waiting_rooms"
    __table_args__ = (CheckConstraint("fixed_rate_per_s IS NULL OR fixed_rate_per_s > 0", name="fixed_rate_positive"),)

    semester_id: Mapped[int] = mapped_column(ForeignKey("semesters.id", ondelete="CASCADE"), primary_key=True)
    # The registrar's switch. NULL: the default (on for the first WAITING_ROOM_DEFAULT_MINUTES
    # of the registration window). Either way a room is only ever on while the window is open.
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    # Students admitted per second, set by the registrar; NULL: adaptive (the measured pace).
    fixed_rate_per_s: Mapped[float | None] = mapped_column(Float)
    # The pace the frontier last moved at (students per second): what estimates divide by.
    rate_per_s: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    # Every ticket up to this one is admitted.
    admitted_through: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # When the frontier last moved (what the next move is measured from).
    frontier_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the adaptive pace was last cut: at most one cut per WAITING_ROOM_CUT_COOLDOWN_SECONDS,
    # so that the students admitted just before a cut get time to show its effect.
    pace_cut_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
