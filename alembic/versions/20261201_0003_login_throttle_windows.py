"""Login throttles: every scope keeps its own window end, and counts attempts of its kind.

The scopes now have windows of two lengths (failures: LOGIN_FAILURE_WINDOW_SECONDS,
successful logins: LOGIN_SUCCESS_WINDOW_SECONDS), so each row says when its window
ends instead of when it started; `failures` becomes `attempts` (some scopes count
successful logins); `blocked_until` goes (a scope is refused while its attempts are
at its limit, which the settings say). Rows are kept: "student:" and "client:" count
failures as before. Their window end is taken as start + 300 s, the default window.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("login_throttles", sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE login_throttles SET window_ends_at = window_started_at + interval '300 seconds'")
    op.alter_column("login_throttles", "window_ends_at", nullable=False)
    op.alter_column("login_throttles", "failures", new_column_name="attempts")
    op.drop_column("login_throttles", "blocked_until")
    op.drop_column("login_throttles", "window_started_at")
    op.create_index(op.f("ix_login_throttles_window_ends_at"), "login_throttles", ["window_ends_at"])


def downgrade() -> None:
    # Scopes the previous code does not know would never be purged by it.
    op.execute(
        "DELETE FROM login_throttles WHERE scope LIKE 'pair:%' OR scope LIKE 'student-logins:%'"
        " OR scope LIKE 'client-logins:%'"
    )
    op.drop_index(op.f("ix_login_throttles_window_ends_at"), table_name="login_throttles")
    op.add_column("login_throttles", sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("login_throttles", sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE login_throttles SET window_started_at = window_ends_at - interval '300 seconds'")
    op.alter_column("login_throttles", "window_started_at", nullable=False)
    op.alter_column("login_throttles", "attempts", new_column_name="failures")
    op.drop_column("login_throttles", "window_ends_at")
