"""Engine, sessions and the declarative base shared by every table."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import CursorResult, DateTime, Engine, MetaData, Result, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings

# Stable constraint names, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def create_db_engine(settings: Settings, url: str | None = None, **overrides: Any) -> Engine:
    """One engine per process; its pool is sized to the request threadpool.

    With a multi-host DATABASE_URL (target_session_attrs=read-write) every new
    connection goes to the primary of the moment. A connection broken by a failover
    raises a disconnect error once (a retryable 503); SQLAlchemy then invalidates
    the whole pool (every connection older than that error), so the next checkout
    connects afresh and finds the new primary: no restart needed.
    """
    options = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "connect_args": {
            # Bound every lock wait and statement on the server side, so a pile-up on
            # one hot course turns into a quick, retryable error instead of a stall.
            "options": (
                f"-c lock_timeout={settings.db_lock_timeout_ms} -c statement_timeout={settings.db_statement_timeout_ms}"
            ),
            "connect_timeout": 5,
        },
        "pool_pre_ping": settings.db_pool_pre_ping,
    }
    options.update(overrides)
    return create_engine(url or settings.require_database_url(), **options)


def create_read_engine(settings: Settings, url: str | None = None) -> Engine:
    """The engine for reads that are a single statement, on the primary: a student's
    own data (my-courses, my-status, my-history), token checks, the admin's whoami.

    Autocommit: psycopg2 sends no BEGIN and no COMMIT, so such a read is one round
    trip instead of three, and a single statement still sees one consistent
    snapshot. It has a pool of its own, so reads never wait for connections that
    registrations hold, nor the other way round.
    """
    return create_db_engine(
        settings,
        url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_read_pool_size,
        max_overflow=settings.db_read_max_overflow,
    )


def create_catalogue_engine(settings: Settings, read_engine: Engine) -> Engine:
    """The engine for the catalogue (semesters, courses, seat counts): DATABASE_READ_URL
    when set (a standby, typically: the catalogue already tolerates a second of lag),
    otherwise the primary read engine itself (one pool, not two).

    Only the catalogue may lag: a student's own reads stay on the primary, so a
    registration just answered 200 always shows in my-courses.
    """
    if not settings.database_read_url:
        return read_engine
    return create_read_engine(settings, settings.database_read_url)


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: services return ORM objects that routers read after commit.
    return sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. Services begin and end their own transactions.

    `async def`, so that opening and closing the session costs no threadpool
    hops: neither does I/O while no transaction is open, and every service ends
    the transactions it begins. A session left inside one (a connection still
    checked out) is closed in the threadpool, since that rolls back over the wire.
    """
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def rows_affected(result: Result[Any]) -> int:
    """The row count of an INSERT, UPDATE or DELETE run through a Session
    (typed as a plain Result; at run time a CursorResult, which has the count)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


async def get_read_engine(request: Request) -> Engine:
    """`async def` and no I/O: read services check out (and return) their own connection."""
    engine: Engine = request.app.state.read_engine
    return engine


ReadEngineDep = Annotated[Engine, Depends(get_read_engine)]


async def get_catalogue_engine(request: Request) -> Engine:
    """The catalogue's engine (a standby when DATABASE_READ_URL names one); see get_read_engine."""
    engine: Engine = request.app.state.catalogue_engine
    return engine


CatalogueEngineDep = Annotated[Engine, Depends(get_catalogue_engine)]
