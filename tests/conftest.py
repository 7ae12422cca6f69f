"""Test fixtures: a throwaway PostgreSQL, migrated once; data made per test.

Each test makes its own semester, courses and students with random names, so
tests never see each other's rows and concurrency tests can commit freely.
"""

import json
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings, normalize_database_url
from app.core.db import create_db_engine
from app.core.security import create_access_token, hash_password
from app.courses.models import Course
from app.main import create_app
from app.runtime.server import command as serve_command
from app.semesters.models import Semester
from app.students.models import Student
from scripts import migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEST_PASSWORD = "correct horse"
TEST_ENV = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-" + "x" * 32,
    "BCRYPT_ROUNDS": "4",  # the cheapest cost bcrypt allows: tests log in a lot
    # Reads show exactly what was just written; the catalogue cache has its own
    # tests (tests/test_catalogue_cache.py).
    "CATALOGUE_CACHE_SECONDS": "0",
    "DB_LOCK_TIMEOUT_MS": "5000",
    "LOG_LEVEL": "WARNING",
    # Every TestClient request comes from one address; the per-client limits are
    # tested with their own settings (tests/test_login_throttle.py, test_login_protection.py).
    "LOGIN_MAX_FAILURES_PER_CLIENT": "1000000",
    "LOGIN_MAX_SUCCESSES_PER_CLIENT": "1000000",
}


def _create_database_on(server_url: str, name: str) -> str:
    """Create a fresh database beside the one in server_url; return its URL."""
    url = make_url(normalize_database_url(server_url))
    connection = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


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
            return _create_database_on(os.environ["TEST_DATABASE_URL"], name)
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


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Factory:
    """Makes committed rows with random names, so tests stay independent."""

    engine: Engine
    settings: Settings
    _password_hash: str

    def semester(self, *, opens: timedelta = timedelta(days=-1), closes: timedelta = timedelta(days=1)) -> Semester:
        now = datetime.now(UTC)
        semester = Semester(name=_unique("Semester"), registration_start=now + opens, registration_end=now + closes)
        return self._add(semester)

    def course(self, semester: Semester | None = None, *, capacity: int = 30, reserve_limit: int = 10) -> Course:
        semester = semester or self.semester()
        course = Course(
            semester_id=semester.id,
            course_name=_unique("Course"),
            professor="Prof. Test",
            schedule="Mon 09:00-10:30",
            max_capacity=capacity,
            reserve_limit=reserve_limit,
        )
        return self._add(course)

    def student(self) -> Student:
        return self._add(
            Student(student_number=_unique("T")[:32], password_hash=self._password_hash, name="Test Student")
        )

    def students(self, count: int) -> list[Student]:
        students = [
            Student(student_number=_unique("T")[:32], password_hash=self._password_hash, name=f"Student {i}")
            for i in range(count)
        ]
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add_all(students)
        return students

    def token(self, student: Student) -> str:
        return create_access_token(student_id=student.id, student_number=student.student_number, settings=self.settings)

    def auth(self, student: Student) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(student)}"}

    def _add(self, row):
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return row


@pytest.fixture(scope="session")
def factory(engine, settings) -> Factory:
    return Factory(engine, settings, hash_password(TEST_PASSWORD, rounds=settings.bcrypt_rounds))


# ---- a real server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen  # the supervisor of app/runtime/server.py

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes: the supervisor's spawned children
        (not multiprocessing's resource tracker)."""
        output = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        workers = []
        for pid in map(int, output.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                workers.append(pid)
        return workers

    def listening_worker_pids(self) -> list[int]:
        """The workers that accept connections: each binds its own socket on the port."""
        listening = []
        for pid in self.worker_pids():
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections):
                listening.append(pid)
        return listening


def start_server(database_url: str, *, workers: int = 2, extra_env: dict[str, str] | None = None) -> LiveServer:
    """The API served the way `make run` serves it (app/runtime/server.py): a supervisor
    that replaces dead workers and never health-pings busy ones, and workers that
    each listen on the port with SO_REUSEPORT."""
    port = free_port()
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, **(extra_env or {})}
    process = subprocess.Popen(
        serve_command("app.asgi:app", host="127.0.0.1", port=port, workers=workers, log_level="warning"),
        cwd=PROJECT_ROOT,
        env=env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.runtime.server exited with {process.returncode}")
        try:
            ready = httpx.get(f"{server.base_url}/ready", timeout=1).status_code == 200
            # Every worker must be listening, not just the first to answer (one
            # worker is served by plain uvicorn in the supervisor's own process).
            if ready and (workers == 1 or len(server.listening_worker_pids()) >= workers):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError("the server did not become ready in 30 s")


def answered_by_worker(metrics_dir: Path, route: str) -> Counter:
    """Requests each worker process has answered on a route, from the Prometheus
    files every worker writes under its own pid (PROMETHEUS_MULTIPROC_DIR)."""
    from prometheus_client.mmap_dict import MmapedDict

    answered = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "http_requests_total" and labels.get("route") == route:
                answered[pid] += value
    return answered


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def live_server(database_url) -> Iterator[LiveServer]:
    """The API with 2 worker processes (app/runtime/server.py) against the test database."""
    server = start_server(database_url, workers=2)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def raw_engine(database_url) -> Iterator[Engine]:
    """An engine without the app's timeouts, for constraint tests."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()
