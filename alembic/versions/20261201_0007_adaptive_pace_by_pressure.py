"""The waiting room's adaptive pace follows the write gates' pressure: a room remembers
when its pace was last cut (`pace_cut_at`), and the index of a semester's recent
events, which the old pace counted, goes (every registration event paid for it on
the hot path).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("waiting_rooms", sa.Column("pace_cut_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_registration_events_semester_recent", table_name="registration_events")


def downgrade() -> None:
    op.create_index("ix_registration_events_semester_recent", "registration_events", ["semester_id", "occurred_at"])
    op.drop_column("waiting_rooms", "pace_cut_at")
