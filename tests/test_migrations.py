"""Migrations run both ways on an empty database, and match the models exactly."""

import secrets

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.models import Base
from scripts import migrate

TABLES = {"students", "semesters", "courses", "course_registrations", "idempotency_keys", "login_throttles"}


def _tables(url):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}, connection.exec_driver_sql(
                "SELECT count(*) FROM pg_type WHERE typname = 'registration_status'"
            ).scalar()
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_an_empty_database(create_database):
    url = create_database(f"migrations_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    assert _tables(url) == (TABLES, 1)
    migrate.downgrade(url, "base")
    assert _tables(url) == (set(), 0)
    migrate.upgrade(url)
    assert _tables(url) == (TABLES, 1)


def test_models_match_the_migrated_schema(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
