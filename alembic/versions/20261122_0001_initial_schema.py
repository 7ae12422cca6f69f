"""Initial schema: students, semesters, courses with seat counters, registrations.

Written by hand. Constraint names follow the naming convention in app/core/db.py;
op.f() marks each as final, so the convention is not applied to it a second time.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


registration_status = postgresql.ENUM("ENROLLED", "RESERVED", name="registration_status", create_type=False)


def upgrade() -> None:
    op.create_table(
        "students",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("student_number", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_students")),
        sa.UniqueConstraint("student_number", name=op.f("uq_students_student_number")),
    )

    op.create_table(
        "semesters",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("registration_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registration_end", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_semesters")),
        sa.UniqueConstraint("name", name=op.f("uq_semesters_name")),
        sa.CheckConstraint(
            "registration_start < registration_end", name=op.f("ck_semesters_registration_window_order")
        ),
    )

    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("semester_id", sa.Integer(), nullable=False),
        sa.Column("course_name", sa.String(200), nullable=False),
        sa.Column("professor", sa.String(200), nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("max_capacity", sa.Integer(), nullable=False),
        sa.Column("reserve_limit", sa.Integer(), server_default="10", nullable=False),
        # Counters kept in step with course_registrations under the course lock.
        sa.Column("enrolled_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved_count", sa.Integer(), server_default="0", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
        sa.ForeignKeyConstraint(
            ["semester_id"], ["semesters.id"], name=op.f("fk_courses_semester_id_semesters"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("semester_id", "course_name", name=op.f("uq_courses_semester_id_course_name")),
        sa.CheckConstraint("max_capacity >= 0", name=op.f("ck_courses_max_capacity_non_negative")),
        sa.CheckConstraint("reserve_limit >= 0", name=op.f("ck_courses_reserve_limit_non_negative")),
        sa.CheckConstraint(
            "enrolled_count >= 0 AND enrolled_count <= max_capacity", name=op.f("ck_courses_enrolled_within_capacity")
        ),
        sa.CheckConstraint(
            "reserved_count >= 0 AND reserved_count <= reserve_limit", name=op.f("ck_courses_reserved_within_limit")
        ),
    )

    registration_status.create(op.get_bind())
    op.create_table(
        "course_registrations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("status", registration_status, nullable=False),
        sa.Column("reserve_position", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_registrations")),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_course_registrations_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_registrations_course_id_courses"), ondelete="CASCADE"
        ),
        # Also the index for "this student's registrations" (my-courses, drop).
        sa.UniqueConstraint("student_id", "course_id", name=op.f("uq_course_registrations_student_id_course_id")),
        # Also the index for "this course's reserve list" (shifting, invariant checks).
        # Deferrable, so it is checked at the end of a statement that shifts the list.
        sa.UniqueConstraint(
            "course_id",
            "reserve_position",
            name=op.f("uq_course_registrations_course_id_reserve_position"),
            deferrable=True,
            initially="IMMEDIATE",
        ),
        sa.CheckConstraint(
            "(status = 'ENROLLED' AND reserve_position IS NULL)"
            " OR (status = 'RESERVED' AND reserve_position IS NOT NULL AND reserve_position >= 1)",
            name=op.f("ck_course_registrations_position_iff_reserved"),
        ),
    )


def downgrade() -> None:
    op.drop_table("course_registrations")
    registration_status.drop(op.get_bind())
    op.drop_table("courses")
    op.drop_table("semesters")
    op.drop_table("students")
