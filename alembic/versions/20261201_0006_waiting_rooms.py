"""Waiting rooms: one row per semester that has one (switch, pace, frontier), one
sequence of tickets for every room, a student's ticket in `student_terms`, and the
index the adaptive pace reads a semester's recent events with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("waiting_room_tickets")))
    op.create_table(
        "waiting_rooms",
        sa.Column("semester_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("fixed_rate_per_s", sa.Float(), nullable=True),
        sa.Column("rate_per_s", sa.Float(), server_default="0", nullable=False),
        sa.Column("admitted_through", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frontier_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("semester_id", name=op.f("pk_waiting_rooms")),
        sa.ForeignKeyConstraint(
            ["semester_id"], ["semesters.id"], name=op.f("fk_waiting_rooms_semester_id_semesters"), ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "fixed_rate_per_s IS NULL OR fixed_rate_per_s > 0", name=op.f("ck_waiting_rooms_fixed_rate_positive")
        ),
    )
    op.add_column("student_terms", sa.Column("queue_ticket", sa.BigInteger(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_student_terms_semester_id_queue_ticket"), "student_terms", ["semester_id", "queue_ticket"]
    )
    op.create_index("ix_registration_events_semester_recent", "registration_events", ["semester_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_registration_events_semester_recent", table_name="registration_events")
    op.drop_constraint(op.f("uq_student_terms_semester_id_queue_ticket"), "student_terms", type_="unique")
    op.drop_column("student_terms", "queue_ticket")
    op.drop_table("waiting_rooms")
    op.execute(sa.schema.DropSequence(sa.Sequence("waiting_room_tickets")))
