"""DATABASE_URL and DATABASE_READ_URL: libpq's forms reach psycopg2 intact, and the
catalogue engine is the only one that follows DATABASE_READ_URL."""

import pytest
from sqlalchemy import make_url

from app.core.config import Settings, normalize_database_url
from app.core.db import create_catalogue_engine, create_read_engine


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("postgres://u@h:5433/db?sslmode=require", "postgresql+psycopg2://u@h:5433/db?sslmode=require"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/socket",
            "postgresql+psycopg2://postgres:@/postgres?host=/tmp/socket",
        ),
        (
            "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql+psycopg2://u:p@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write",
        ),
        ("postgresql://u@h1,h2/db", "postgresql+psycopg2://u@/db?host=h1&host=h2"),
        ("postgresql://u@h1:1,h2:2", "postgresql+psycopg2://u@/?host=h1:1&host=h2:2"),
    ],
)
def test_urls_name_psycopg2_and_keep_every_host(given, expected):
    assert normalize_database_url(given) == expected


def test_a_multi_host_url_reaches_libpq_as_host_and_port_lists():
    url = make_url(
        normalize_database_url("postgresql://u@127.0.0.1:5433,127.0.0.1:5434/db?target_session_attrs=read-write")
    )
    engine = create_read_engine(Settings(database_url=str(url)))
    try:
        _args, kwargs = engine.dialect.create_connect_args(url)
    finally:
        engine.dispose()
    assert kwargs["host"] == "127.0.0.1,127.0.0.1"
    assert kwargs["port"] == "5433,5434"
    assert kwargs["target_session_attrs"] == "read-write"
    assert kwargs["dbname"] == "db"


def test_the_catalogue_shares_the_primary_read_engine_unless_a_read_url_is_set():
    settings = Settings(database_url="postgresql://u@primary/db")
    read_engine = create_read_engine(settings)
    assert create_catalogue_engine(settings, read_engine) is read_engine

    with_standby = Settings(
        database_url="postgresql://u@primary:5432,standby:5432/db?target_session_attrs=read-write",
        database_read_url="postgresql://u@standby:5432,primary:5432/db?target_session_attrs=prefer-standby",
    )
    catalogue = create_catalogue_engine(with_standby, create_read_engine(with_standby))
    try:
        assert catalogue.url.query["target_session_attrs"] == "prefer-standby"
        assert catalogue.url.query["host"] == ("standby:5432", "primary:5432")
        assert catalogue.pool.size() == with_standby.db_read_pool_size
    finally:
        catalogue.dispose()
        read_engine.dispose()
