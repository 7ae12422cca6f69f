"""The waiting room's adaptive pace remembers where the service was last overloaded
(`pace_peak`: the pace when its latest run of cuts began), so that a run of cuts stops
at half of it and the pace grows back quickly to most of it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("waiting_rooms", sa.Column("pace_peak", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("waiting_rooms", "pace_peak")
