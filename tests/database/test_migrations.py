"""Migrations run both ways on an empty database, and match the models exactly."""

import secrets

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.models import Base
from scripts import migrate

# Every table the models define (app/models.py imports them all).
TABLES = set(Base.metadata.tables)


def _tables(url):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}, connection.exec_driver_sql(
                "SELECT count(*) FROM pg_type WHERE typname IN ('registration_status', 'registration_event_type')"
            ).scalar()
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_an_empty_database(create_database):
    url = create_database(f"migrations_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    assert _tables(url) == (TABLES, 2)
    migrate.downgrade(url, "base")
    assert _tables(url) == (set(), 0)
    migrate.upgrade(url)
    assert _tables(url) == (TABLES, 2)


def test_models_match_the_migrated_schema(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


# Names from the naming convention in app/core/db.py ("ck_%(table_name)s_%(constraint_name)s").
CHECK_CONSTRAINTS = {
    "ck_semesters_registration_window_order": ("semesters", "registration_start < registration_end"),
    "ck_courses_max_capacity_non_negative": ("courses", "max_capacity >= 0"),
    "ck_courses_reserve_limit_non_negative": ("courses", "reserve_limit >= 0"),
    "ck_courses_enrolled_within_capacity": ("courses", "enrolled_count <= max_capacity"),
    "ck_courses_reserved_within_limit": ("courses", "reserved_count <= reserve_limit"),
    "ck_course_registrations_position_iff_reserved": ("course_registrations", "reserve_position IS NOT NULL"),
    "ck_courses_credits_in_range": ("courses", "credits >= 0"),
    "ck_courses_meetings_is_a_list": ("courses", "jsonb_typeof"),
    "ck_students_max_credits_in_range": ("students", "max_credits >= 0"),
    "ck_student_terms_credits_non_negative": ("student_terms", "credits >= 0"),
    "ck_staff_accounts_role_known": ("staff_accounts", "role"),
    "ck_refresh_tokens_subject_kind_known": ("refresh_tokens", "subject_kind"),
    "ck_waiting_rooms_fixed_rate_positive": ("waiting_rooms", "fixed_rate_per_s > "),
}


def _constraints(connection, kind):
    rows = connection.exec_driver_sql(
        "SELECT conname, conrelid::regclass::text, condeferrable, condeferred, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype = %(kind)s",
        {"kind": kind},
    )
    return {name: (table, deferrable, deferred, definition) for name, table, deferrable, deferred, definition in rows}


def test_migrated_database_has_every_check_constraint(raw_engine):
    with raw_engine.connect() as connection:
        checks = _constraints(connection, "c")
    assert set(checks) == set(CHECK_CONSTRAINTS)
    for name, (table, fragment) in CHECK_CONSTRAINTS.items():
        assert checks[name][0] == table, name
        # pg_get_constraintdef adds parentheses; compare without them.
        assert fragment in checks[name][3].replace("(", "").replace(")", ""), (name, checks[name][3])


def test_reserve_positions_are_unique_per_course_with_a_deferrable_constraint(raw_engine):
    with raw_engine.connect() as connection:
        uniques = _constraints(connection, "u")
    table, deferrable, deferred, definition = uniques["uq_course_registrations_course_id_reserve_position"]
    assert table == "course_registrations"
    assert definition.startswith("UNIQUE (course_id, reserve_position)")
    # Deferrable: checked at the end of each statement, so one UPDATE can shift a
    # whole reserve list up by one (tests/database/test_database_constraints.py). Initially
    # IMMEDIATE on purpose: a duplicate position fails the statement that wrote it,
    # not a later COMMIT.
    assert deferrable is True
    assert deferred is False
    assert uniques["uq_course_registrations_student_id_course_id"][3] == "UNIQUE (student_id, course_id)"
