"""Academic rules (course codes, credits, meetings, prerequisites; a student's
credit limit, transcript, holds and appointments, and the per-semester credit
counter) and the audit trail of registration events.

Existing courses get the code `C<id>` and 3 credits; existing registrations
count their course's credits in a new per-semester counter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = (
    "ENROLLED",
    "RESERVED",
    "PROMOTED",
    "DROPPED",
    "SWAPPED",
    "CANCELLED",
    "CAPACITY_CHANGED",
    "HOLD_PLACED",
    "HOLD_LIFTED",
)


def upgrade() -> None:
    # Courses: the student's side of registering.
    op.add_column("courses", sa.Column("code", sa.String(20), nullable=True))
    op.execute("UPDATE courses SET code = 'C' || id")
    op.alter_column("courses", "code", nullable=False)
    op.add_column("courses", sa.Column("credits", sa.SmallInteger(), server_default="3", nullable=False))
    op.add_column(
        "courses", sa.Column("meetings", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False)
    )
    op.add_column(
        "courses",
        sa.Column("prerequisites", postgresql.ARRAY(sa.String(20)), server_default="{}", nullable=False),
    )
    op.add_column("courses", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint(op.f("uq_courses_semester_id_code"), "courses", ["semester_id", "code"])
    op.create_check_constraint(op.f("ck_courses_credits_in_range"), "courses", "credits BETWEEN 0 AND 12")
    op.create_check_constraint(op.f("ck_courses_meetings_is_a_list"), "courses", "jsonb_typeof(meetings) = 'array'")

    # Registrations keep the credits they count for.
    op.add_column("course_registrations", sa.Column("credits", sa.SmallInteger(), server_default="0", nullable=False))
    op.execute("UPDATE course_registrations r SET credits = c.credits FROM courses c WHERE c.id = r.course_id")

    # Students: a limit of their own (NULL: DEFAULT_MAX_CREDITS), a transcript, holds, terms.
    op.add_column("students", sa.Column("max_credits", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(op.f("ck_students_max_credits_in_range"), "students", "max_credits BETWEEN 0 AND 60")
    op.create_table(
        "student_completed_courses",
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("course_code", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_student_completed_courses_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_id", "course_code", name=op.f("pk_student_completed_courses")),
    )
    op.create_table(
        "student_holds",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("placed_by", sa.String(100), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_student_holds_student_id_students"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_student_holds")),
    )
    op.create_index(
        "ix_student_holds_active", "student_holds", ["student_id"], postgresql_where=sa.text("lifted_at IS NULL")
    )
    op.create_table(
        "student_terms",
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("semester_id", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("registration_opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_student_terms_student_id_students"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["semester_id"], ["semesters.id"], name=op.f("fk_student_terms_semester_id_semesters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("student_id", "semester_id", name=op.f("pk_student_terms")),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_student_terms_credits_non_negative")),
    )
    op.execute(
        "INSERT INTO student_terms (student_id, semester_id, credits) "
        "SELECT r.student_id, c.semester_id, sum(r.credits) FROM course_registrations r "
        "JOIN courses c ON c.id = r.course_id GROUP BY r.student_id, c.semester_id"
    )

    # The audit trail.
    event_type = postgresql.ENUM(*EVENT_TYPES, name="registration_event_type")
    event_type.create(op.get_bind())
    op.create_table(
        "registration_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column(
            "event_type",
            postgresql.ENUM(*EVENT_TYPES, name="registration_event_type", create_type=False),
            nullable=False,
        ),
        sa.Column("semester_id", sa.Integer(), nullable=True),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("student_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(150), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("reserve_position", sa.Integer(), nullable=True),
        sa.Column("details", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_events")),
    )
    op.create_index("ix_registration_events_course", "registration_events", ["course_id", "id"])
    op.create_index("ix_registration_events_student", "registration_events", ["student_id", "semester_id", "id"])
    # Registrations that existed before the trail get one event each, in position
    # order, so that replaying the trail explains them too.
    op.execute(
        "INSERT INTO registration_events (event_type, semester_id, course_id, student_id, actor, reserve_position, "
        "details) SELECT r.status::text::registration_event_type, c.semester_id, r.course_id, r.student_id, 'system', "
        "r.reserve_position, '{\"migrated\": true}'::jsonb FROM course_registrations r JOIN courses c ON c.id = r.course_id "
        "ORDER BY r.course_id, r.status, r.reserve_position NULLS FIRST, r.id"
    )


def downgrade() -> None:
    op.drop_index("ix_registration_events_student", table_name="registration_events")
    op.drop_index("ix_registration_events_course", table_name="registration_events")
    op.drop_table("registration_events")
    postgresql.ENUM(name="registration_event_type").drop(op.get_bind())
    op.drop_table("student_terms")
    op.drop_index("ix_student_holds_active", table_name="student_holds")
    op.drop_table("student_holds")
    op.drop_table("student_completed_courses")
    op.drop_constraint(op.f("ck_students_max_credits_in_range"), "students", type_="check")
    op.drop_column("students", "max_credits")
    op.drop_column("course_registrations", "credits")
    op.drop_constraint(op.f("ck_courses_meetings_is_a_list"), "courses", type_="check")
    op.drop_constraint(op.f("ck_courses_credits_in_range"), "courses", type_="check")
    op.drop_constraint(op.f("uq_courses_semester_id_code"), "courses", type_="unique")
    for column in ("cancelled_at", "prerequisites", "meetings", "credits", "code"):
        op.drop_column("courses", column)
