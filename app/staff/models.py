import uuid
from enum import StrEnum

from sqlalchemy import CheckConstraint, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin


class StaffRole(StrEnum):
    """What a staff account may do. A new role is a new member here and a migration
    that widens the CHECK below (a string column, not a PostgreSQL enum type)."""

    REGISTRAR = "registrar"


# Written out (not derived from StaffRole) so that the model and its migration say the same thing.
ROLE_CHECK = "role IN ('registrar')"


class StaffAccount(TimestampMixin, Base):
    """Someone who runs registration, apart from students: their own login and tokens."""

    __tablename__ = "staff_accounts"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role_known"),)

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
