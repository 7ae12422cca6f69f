"""The database under test: fresh databases, and the invariants every test must leave intact."""

import psycopg2
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.core.config import normalize_database_url
from app.registrations.invariants import audit


def assert_invariants(engine: Engine) -> None:
    """The registration invariants (app/registrations/invariants.py) hold in the whole database,
    read in one snapshot (servers a test started may still be writing)."""
    report = audit(engine)
    assert report.ok, [str(violation) for violation in report.violations]


def create_database_on(server_url: str, name: str) -> str:
    """Create a fresh database beside the one in server_url; return its URL."""
    url = make_url(normalize_database_url(server_url))
    connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return url.set(database=name).render_as_string(hide_password=False)
