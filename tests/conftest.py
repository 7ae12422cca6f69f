"""Test fixtures: a throwaway PostgreSQL, migrated once; data made per test.

Each test makes its own semester, courses and students with random names, so
tests never see each other's rows and concurrency tests can commit freely.

Fixtures only: the helpers tests call (the factory's class, TEST_PASSWORD,
run_all_at_once, register, start_server, ...) live in tests/support/, and test
modules import them from there, never from here or from each other.
"""

import os
import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.core.db import create_db_engine
from app.core.security import hash_password
from app.main import create_app
from bench.live_server import LiveServer
from scripts import migrate
from tests.support.database import create_database_on
from tests.support.environment import TEST_ENV, TEST_PASSWORD
from tests.support.factory import Factory
from tests.support.servers import start_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object | None]:
    """The embedded server, or None when TEST_DATABASE_URL names one."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    from app.runtime.embedded_postgres import throwaway

    server = throwaway()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def create_database(postgres_server):
    """Make a fresh, empty database on the test server; returns its SQLAlchemy URL."""

    def create(name: str) -> str:
        if postgres_server is None:
            return create_database_on(os.environ["TEST_DATABASE_URL"], name)
        return postgres_server.create_database(name)

    return create


@pytest.fixture(scope="session")
def database_url(create_database) -> Iterator[str]:
    """A migrated, throwaway database; the process environment points at it."""
    url = create_database(f"course_reg_test_{secrets.token_hex(4)}")
    previous = {key: os.environ.get(key) for key in [*TEST_ENV, "DATABASE_URL"]}
    os.environ.update(TEST_ENV, DATABASE_URL=url)
    get_settings.cache_clear()
    migrate.upgrade(url)
    yield url
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(database_url) -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(settings) -> Iterator[Engine]:
    engine = create_db_engine(settings, pool_size=5, max_overflow=110)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


# ---- data ------------------------------------------------------------------


@pytest.fixture(scope="session")
def factory(engine, settings) -> Factory:
    return Factory(engine, settings, hash_password(TEST_PASSWORD, rounds=settings.bcrypt_rounds))


@pytest.fixture
def registrar(factory) -> dict[str, str]:
    """The Authorization header of a fresh registrar account."""
    return factory.staff_auth(factory.staff())


# ---- a real server -----------------------------------------------------------


@pytest.fixture(scope="session")
def live_server(database_url) -> Iterator[LiveServer]:
    """The API with 2 worker processes (app/runtime/server.py) against the test database."""
    server = start_server(database_url, workers=2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def raw_engine(database_url) -> Iterator[Engine]:
    """An engine without the app's timeouts, for constraint tests."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def statements_by_engine(app) -> Iterator[dict[str, list[tuple[str, bool]]]]:
    """The statements the app sends while the test runs, per engine ("read", "write"),
    each with whether its connection was in autocommit."""
    seen: dict[str, list[tuple[str, bool]]] = {"read": [], "write": []}

    def recorder(kind):
        def record(conn, cursor, statement, parameters, context, executemany):
            seen[kind].append((statement, conn.connection.dbapi_connection.autocommit))

        return record

    listeners = [(app.state.read_engine, recorder("read")), (app.state.engine, recorder("write"))]
    for engine, listener in listeners:
        event.listen(engine, "before_cursor_execute", listener)
    yield seen
    for engine, listener in listeners:
        event.remove(engine, "before_cursor_execute", listener)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the live_server fixture is a live_server test, marked or not,
    so that it never slows `make test-fast`."""
    for item in items:
        if "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live_server)
