"""Drop the index of a semester's recent events: the waiting room's adaptive pace no
longer counts events (it follows the write gates' pressure), and every registration
event paid for the index on the hot path.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_registration_events_semester_recent", table_name="registration_events")


def downgrade() -> None:
    op.create_index("ix_registration_events_semester_recent", "registration_events", ["semester_id", "occurred_at"])
