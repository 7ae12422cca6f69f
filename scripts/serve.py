"""Serve the API with N uvicorn worker processes on one port.

    python -m scripts.serve app.asgi:app --host 127.0.0.1 --port 8500 --workers 2

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
socket and sets TCP_NODELAY. With one worker (or without SO_REUSEPORT) this
is plain `uvicorn`.
"""

import argparse
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys

import uvicorn


def command(app: str, *, host: str, port: int, workers: int) -> list[str]:
    """The command line `make run` and `make bench` serve with."""
    return [
        sys.executable, "-m", "scripts.serve", app,
        "--host", host, "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _worker_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _run_worker(app: str, host: str, port: int, options: dict) -> None:
    """One worker process: its own listening socket, one uvicorn server."""
    config = uvicorn.Config(app, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[_worker_socket(host, port)])


def _check_port_free(host: str, port: int) -> None:
    """Fail fast on a busy port. Without SO_REUSEPORT on this probe, a second
    server of ours on the same port is refused instead of silently sharing it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            sys.exit(f"cannot serve on {host}:{port}: {exc}")


def _supervise(workers: list[multiprocessing.Process]) -> int:
    """Run until any worker exits (or a signal arrives), then stop them all."""

    def stop_workers(signum=None, frame=None) -> None:
        # SIGTERM, not SIGINT: a second SIGINT makes uvicorn drop open requests.
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_workers)
    signal.signal(signal.SIGINT, stop_workers)
    multiprocessing.connection.wait([worker.sentinel for worker in workers])
    stop_workers()
    for worker in workers:
        worker.join(timeout=15)
        if worker.is_alive():
            worker.kill()
            worker.join()
    return 0 if all(worker.exitcode in (0, -signal.SIGTERM) for worker in workers) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", help="the ASGI app, e.g. app.asgi:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    options = {"access_log": args.access_log, "log_level": args.log_level}

    if args.workers <= 1 or not hasattr(socket, "SO_REUSEPORT") or sys.platform != "linux":
        # uvicorn's own single-process path binds through getaddrinfo and is fine.
        uvicorn.run(args.app, host=args.host, port=args.port, workers=args.workers, **options)
        return 0

    _check_port_free(args.host, args.port)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_run_worker, args=(args.app, args.host, args.port, options), name=f"api-worker-{i}"
        )
        for i in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    print(f"serving {args.app} on http://{args.host}:{args.port} with {args.workers} workers (SO_REUSEPORT)")
    return _supervise(workers)


if __name__ == "__main__":
    sys.exit(main())
