"""The API (or any ASGI app) served in a child process on a free 127.0.0.1 port.

One helper for the three places that need a real server: the tests, `make bench`
(bench/suite.py) and the soak (bench/soak.py). Tooling, not runtime: the API
image does not copy bench/.

    with LiveServer(workers=2, env={**os.environ, "DATABASE_URL": url}) as server:
        httpx.get(server.base_url + "/ready")

The server is started the way `make run` serves (`python -m app.runtime.server
APP --host 127.0.0.1 --port P --workers N`, see `app.runtime.server.command`),
or with uvicorn's own `--workers` (launcher="uvicorn", for `python -m bench
--launcher uvicorn`). It is ready when the ready path answers 200 *and* every
worker has started: one answer only proves that the first worker is up.

- launcher "serve": each worker binds the port itself (SO_REUSEPORT), so a
  worker has started when its process listens on the port.
- launcher "uvicorn": the workers share the supervisor's socket, so listening
  proves nothing; a worker has started when it has logged "Application startup
  complete" (this needs a log file and the default log level).

Stopping sends SIGTERM (the supervisor stops its workers), then SIGKILL if the
server is still running after `stop_timeout` seconds.
"""

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import httpx
import psutil

from app.runtime.server import command as server_command

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_COMPLETE = "Application startup complete"

Launcher = Literal["serve", "uvicorn"]


class ServerNotReady(RuntimeError):
    """The server exited, or did not become ready in time."""


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's choice) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str, *, timeout: float = 2.0) -> bool:
    """True when GET url answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(
    base_url: str,
    path: str | None = "/ready",
    *,
    timeout: float = 60.0,
    process: subprocess.Popen[bytes] | None = None,
    also: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> None:
    """Wait until base_url + path answers 200 (path None: skip that) and `also()`
    holds; raise ServerNotReady when `process` exits first or `timeout` seconds
    pass. Works for somebody else's server too (no process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerNotReady(f"the server exited with status {process.returncode} before it was ready")
        if (path is None or answers(base_url + path)) and (also is None or also()):
            return
        time.sleep(interval)
    what = f"{base_url}{path} did not answer 200" if path is not None else f"{base_url} did not start"
    raise ServerNotReady(f"{what} within {timeout:.0f} s")


def uvicorn_command(app: str, *, host: str, port: int, workers: int, log_level: str = "info") -> list[str]:
    """uvicorn's own CLI with its multiprocess supervisor, as `make run` served before
    app/runtime/server.py (the bench's --launcher uvicorn compares the two)."""
    return [
        *(sys.executable, "-m", "uvicorn", app),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--no-access-log", "--log-level", log_level, "--timeout-worker-healthcheck", "30"),
    ]


class LiveServer:
    """An ASGI app served by `workers` processes on a free 127.0.0.1 port.

    root is the checkout whose code is served (another one: a benchmark's reference).
    env is the child's whole environment (None: this process's own). log_path
    None lets the server write to this process's stdout and stderr; a path gets
    both, truncated first. ready_path None waits for the workers only (an app
    without a readiness endpoint).
    """

    def __init__(
        self,
        app: str = "app.asgi:app",
        *,
        workers: int = 2,
        root: Path = PROJECT_ROOT,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        launcher: Launcher = "serve",
        log_level: str = "info",
        ready_path: str | None = "/ready",
        ready_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ) -> None:
        if launcher == "uvicorn" and workers > 1 and (log_path is None or log_level not in {"info", "debug", "trace"}):
            raise ValueError("uvicorn's workers are seen starting in their log: give a log_path and log level info")
        self.app = app
        self.workers = workers
        self.root = root
        self.env = dict(env) if env is not None else None
        self.log_path = log_path
        self.launcher: Launcher = launcher
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        build = uvicorn_command if launcher == "uvicorn" else server_command
        self.command = build(app, host=HOST, port=self.port, workers=workers, log_level=log_level)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ---- start and stop ----------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The process started: the supervisor (or the single server process)."""
        if self._process is None:
            raise RuntimeError("the server has not been started")
        return self._process

    def start(self) -> "LiveServer":
        """Start the process; return at once (see `wait_ready`)."""
        if self.log_path is not None:
            self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command,
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
        )
        return self

    def wait_ready(self) -> "LiveServer":
        """Wait until the ready path answers 200 and every worker has started; raise
        ServerNotReady (with the log, if there is one) when the server exits first
        or takes longer than ready_timeout."""
        try:
            wait_ready(
                self.base_url, self.ready_path, timeout=self.ready_timeout, process=self.process, also=self.all_started
            )
        except ServerNotReady as error:
            if self.log_path is not None:
                raise ServerNotReady(f"{error}; see {self.log_path}:\n{self.log_text()}") from None
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after stop_timeout; safe to call twice."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LiveServer":
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ---- while it runs -------------------------------------------------------------

    def get(self, path: str) -> int:
        """The status of GET path."""
        return httpx.get(self.base_url + path, timeout=10).status_code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path is not None else ""

    def worker_pids(self) -> list[int]:
        """The worker processes: the supervisor's children started by multiprocessing's
        spawn (not its resource tracker)."""
        workers = []
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        for child in children:
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    workers.append(child.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return workers

    def listens(self, pid: int) -> bool:
        """Whether process pid has a socket listening on the port."""
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port for c in connections)

    def listening_worker_pids(self) -> list[int]:
        """The workers that accept connections: each binds its own socket on the port."""
        return [pid for pid in self.worker_pids() if self.listens(pid)]

    def all_started(self) -> bool:
        """Every worker has started (see the module's docstring)."""
        if self.launcher == "uvicorn" and self.workers > 1:
            return self.log_text().count(STARTUP_COMPLETE) >= self.workers
        if self.workers == 1:  # one server in the started process itself
            return self.listens(self.process.pid)
        return len(self.listening_worker_pids()) >= self.workers
