"""Serve the API with N uvicorn worker processes on one port.

    python -m app.runtime.server app.asgi:app --host 127.0.0.1 --port 8500 --workers 2

Why not `uvicorn --workers N`: on Linux its multiprocess mode binds one socket
in the supervisor and hands it to every worker, which costs twice
(measured with `make bench`, see docs/performance.md):

1. The socket is created with protocol 0, so asyncio never sets TCP_NODELAY on
   the connections it accepts: every keep-alive response after the first waits
   ~40 ms for the client's delayed ACK (uvicorn issue #3149, open in 0.54).
2. Whichever worker wakes first accepts a whole burst of new connections
   (asyncio accepts up to 100 per wake-up) and keep-alive keeps them there:
   50 connections opened at once all landed on one of two workers.

Here every worker binds its own TCP socket with SO_REUSEPORT: the kernel
spreads new connections evenly across the workers, and asyncio sees a TCP
socket and sets TCP_NODELAY. With one worker this is one uvicorn server in
this process, on a socket it binds the same way (without SO_REUSEPORT); either
way the waiting room's pace watches each listening socket's accept queue.
Without SO_REUSEPORT (not Linux), N workers are uvicorn's own `--workers`.

The supervisor (the process started with this command) replaces a worker that
dies, and stops them all on SIGINT or SIGTERM; see `Supervisor`. Before it starts
them, it raises its soft open-file limit (RLIMIT_NOFILE, inherited by the workers)
towards the hard one when MAX_CONNECTIONS_PER_WORKER would not fit under it, and
lowers the connection limit, with a warning, when even the hard one is too low.
"""

import argparse
import collections
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import NamedTuple, TypedDict

import uvicorn

from app.core.admission import ACCEPT_QUEUE
from app.core.config import get_settings
from app.runtime.protocol import WithoutUvicornRefusals, bounded_protocol


def command(app: str, *, host: str, port: int, workers: int, log_level: str = "info") -> list[str]:
    """The command line `make run`, `make bench`, the soak and the tests serve with."""
    return [
        sys.executable,
        "-m",
        "app.runtime.server",
        app,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        log_level,
    ]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A TCP socket bound to host:port, made with protocol 6 (asyncio then sets TCP_NODELAY
    on its connections); `shared`: with SO_REUSEPORT, one per worker."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> bool:
    """Build the app, then serve it; False if it failed to start."""
    config.load()  # uvicorn's logging configured: now our filter on its per-refusal warning
    logging.getLogger("uvicorn.error").addFilter(WithoutUvicornRefusals())
    # Everything built so far (modules, the app, its routes and schemas) lives as
    # long as the process. Frozen, it is left out of the garbage collector's full
    # passes, which under load otherwise rescan it every second or two and stall
    # every request in flight for 60-100 ms on these machines (docs/performance.md).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    return server.started


class ServerOptions(TypedDict):
    """What every worker builds its uvicorn.Config from (plain values: they cross to spawned processes)."""

    access_log: bool
    log_level: str
    # Connections per worker; past it, 503 SERVICE_BUSY (app/runtime/protocol.py).
    limit_concurrency: int
    timeout_keep_alive: float
    # Peers whose X-Forwarded-For is believed; empty: nobody's (no proxy in front).
    forwarded_allow_ips: str
    max_head_bytes: int
    head_timeout_seconds: float


def server_options(*, access_log: bool, log_level: str) -> ServerOptions:
    """The bounds come from the settings (.env.example, "Connections")."""
    settings = get_settings()
    return {
        "access_log": access_log,
        "log_level": log_level,
        "limit_concurrency": settings.max_connections_per_worker,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "max_head_bytes": settings.max_request_head_bytes,
        "head_timeout_seconds": settings.request_head_timeout_seconds,
    }


# Descriptors a worker holds besides its clients' connections and its database pools: the
# listening socket, the event loop's, standard streams and log files, the Prometheus
# multiprocess files (a scrape opens every worker's), files read while serving.
_OTHER_DESCRIPTORS = 128


def descriptors_besides_connections() -> int:
    """What a worker needs open besides its connections (the margin of `connections_that_fit`)."""
    settings = get_settings()
    pools = (
        settings.db_pool_size + settings.db_max_overflow + settings.db_read_pool_size + settings.db_read_max_overflow
    )
    return _OTHER_DESCRIPTORS + pools


class DescriptorPlan(NamedTuple):
    soft_limit: int  # the soft RLIMIT_NOFILE to run with (the current one when it is enough)
    connections: int  # connections per worker that fit under it


def connections_that_fit(soft: int, hard: int, wanted: int, *, margin: int) -> DescriptorPlan:
    """`wanted` connections per worker need `wanted + margin` open files. A soft limit below
    that is raised as far as needed, never past the hard one (and never lowered); when even the
    hard limit is too low, the connections are what it leaves (at least one)."""
    needed = wanted + margin
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return DescriptorPlan(soft, wanted)
    raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    return DescriptorPlan(raised, max(1, min(wanted, raised - margin)))


def fit_open_file_limit(wanted: int, *, margin: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE (its workers inherit it) for `wanted`
    connections per worker; the connections per worker that fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    plan = connections_that_fit(soft, hard, wanted, margin=margin)
    if plan.soft_limit != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (plan.soft_limit, hard))
        except (ValueError, OSError) as exc:  # a limit of the platform's own (macOS: OPEN_MAX)
            _log(f"warning: cannot raise the open-file limit from {soft} to {plan.soft_limit}: {exc}")
            plan = connections_that_fit(soft, soft, wanted, margin=margin)
        else:
            _log(f"raised the open-file limit (RLIMIT_NOFILE) from {soft} to {plan.soft_limit}")
    if plan.connections < wanted:
        _log(
            f"warning: the open-file limit ({plan.soft_limit}, hard {hard}) leaves room for "
            f"{plan.connections} connections per worker, not MAX_CONNECTIONS_PER_WORKER={wanted} "
            f"(+{margin} other files): serving with {plan.connections}; raise the hard limit "
            "(ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=)"
        )
    return plan.connections


def uvicorn_config(app: str, *, host: str, port: int, options: ServerOptions) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(
            max_head_bytes=options["max_head_bytes"], head_timeout_seconds=options["head_timeout_seconds"]
        ),
        access_log=options["access_log"],
        log_level=options["log_level"],
        limit_concurrency=options["limit_concurrency"],
        timeout_keep_alive=int(options["timeout_keep_alive"]),
        # uvicorn trusts 127.0.0.1 by default: any local client could then pick its
        # own address for the login throttle. Only the configured proxies are trusted.
        proxy_headers=bool(options["forwarded_allow_ips"]),
        forwarded_allow_ips=options["forwarded_allow_ips"] or None,
    )


def _run_worker(app: str, host: str, port: int, options: ServerOptions) -> None:
    """One worker process: its own listening socket (whose accept queue the waiting room's
    pace watches: app/core/admission.py::AcceptQueue), one uvicorn server."""
    listening = _listening_socket(host, port, shared=True)
    ACCEPT_QUEUE.watch(listening)
    _serve(uvicorn_config(app, host=host, port=port, options=options), sockets=[listening])


def _log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def _check_port_free(host: str, port: int) -> None:
    """Fail fast on a busy port. Without SO_REUSEPORT on this probe, a second
    server of ours on the same port is refused instead of silently sharing it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            sys.exit(f"cannot serve on {host}:{port}: {exc}")


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


class Supervisor:
    """Keeps `count` workers running until SIGINT or SIGTERM, then stops them all.

    A worker that dies unexpectedly (killed, crashed) is replaced at once, as
    uvicorn's own supervisor does. Unlike uvicorn's, it never pings its workers:
    a busy worker is never killed for answering a health check late. When workers
    keep dying (more than `max_restarts` deaths within `restart_window` seconds: a
    bad import, a broken configuration), respawning cannot help; the supervisor
    stops every worker and exits with status 1.
    """

    def __init__(
        self,
        start_worker: Callable[[int], BaseProcess],
        count: int,
        *,
        max_restarts: int = 5,
        restart_window: float = 30.0,
    ):
        self.start_worker = start_worker
        self.count = count
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.workers: list[BaseProcess] = []
        self.deaths: collections.deque[float] = collections.deque()
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.workers = [self.start_worker(slot) for slot in range(self.count)]
        gave_up = False
        while not self.stopping:
            # The timeout only bounds how late a signal is noticed; sentinels wake it at once.
            multiprocessing.connection.wait([worker.sentinel for worker in self.workers], timeout=1.0)
            for slot, worker in enumerate(self.workers):
                if self.stopping or worker.is_alive():
                    continue
                worker.join()
                if self._crash_loop():
                    _log(f"workers died {len(self.deaths)} times within {self.restart_window:.0f} s; giving up")
                    gave_up = True
                    self.stopping = True
                    break
                self.workers[slot] = self.start_worker(slot)
                _log(
                    f"worker {worker.pid} {_describe_exit(worker.exitcode)}; "
                    f"started worker {self.workers[slot].pid} in its place"
                )
        self._stop()
        for worker in self.workers:
            worker.join(timeout=15)
            if worker.is_alive():
                worker.kill()
                worker.join()
        if gave_up:
            return 1
        return 0 if all(worker.exitcode in (0, -signal.SIGTERM) for worker in self.workers) else 1

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - self.restart_window:
            self.deaths.popleft()
        return len(self.deaths) > self.max_restarts

    def _stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stopping = True
        # SIGTERM, not SIGINT: a second SIGINT (after the terminal's own) makes
        # uvicorn drop open requests; SIGTERM lets them finish.
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:  # alive: started, so it has a pid
                os.kill(worker.pid, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", help="the ASGI app, e.g. app.asgi:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--max-restarts", type=int, default=5, help="give up when workers die more than this many times ... (default 5)"
    )
    parser.add_argument("--restart-window", type=float, default=30.0, help="... within this many seconds (default 30)")
    args = parser.parse_args()
    options = server_options(access_log=args.access_log, log_level=args.log_level)
    options["limit_concurrency"] = fit_open_file_limit(
        options["limit_concurrency"], margin=descriptors_besides_connections()
    )

    if args.workers <= 1:
        # One process binds its own socket too, so that its accept queue is watched as a
        # worker's is (app/core/admission.py::AcceptQueue); no SO_REUSEPORT: a busy port fails.
        try:
            listening = _listening_socket(args.host, args.port, shared=False)
        except OSError as exc:
            sys.exit(f"cannot serve on {args.host}:{args.port}: {exc}")
        ACCEPT_QUEUE.watch(listening)
        started = _serve(uvicorn_config(args.app, host=args.host, port=args.port, options=options), [listening])
        return 0 if started else 3  # 3: uvicorn's own status for a failed start-up
    if not hasattr(socket, "SO_REUSEPORT") or sys.platform != "linux":
        # uvicorn's own multiprocess mode: its protocol and limits, not ours (Linux has SO_REUSEPORT).
        uvicorn.run(args.app, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
        return 0

    _check_port_free(args.host, args.port)
    context = multiprocessing.get_context("spawn")

    def start_worker(slot: int) -> BaseProcess:
        worker = context.Process(
            target=_run_worker, args=(args.app, args.host, args.port, options), name=f"api-worker-{slot}"
        )
        worker.start()
        return worker

    supervisor = Supervisor(
        start_worker, args.workers, max_restarts=args.max_restarts, restart_window=args.restart_window
    )
    print(
        f"serving {args.app} on http://{args.host}:{args.port} with {args.workers} workers (SO_REUSEPORT)", flush=True
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
