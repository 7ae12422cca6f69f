"""`make run`: database, migrations, demo data, then the API on port 8500.

Without DATABASE_URL (in the environment or in `.env`), starts the embedded
PostgreSQL whose data lives under `.data/postgres` (created on the first run,
reused after). Ctrl-C (or SIGTERM) stops the API and then the embedded
database, even when it comes while the database is still starting.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from app.core.config import get_settings
from app.runtime.embedded_postgres import EmbeddedPostgres
from app.runtime.server import command as serve_command
from scripts import migrate
from scripts.seed import seed_all
from scripts.seed_common import engine_from_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_DATABASE = "course_registration"


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # `kill`, a process manager or a closing terminal stop it as Ctrl-C does; by
    # default SIGTERM would end this process alone and leave the API and the
    # embedded database running.
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8500")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
    parser.add_argument("--data-dir", default=str(PROJECT_ROOT / ".data" / "postgres"))
    parser.add_argument("--no-seed", action="store_true", help="skip seeding demo data")
    args = parser.parse_args(argv)

    # Settings, not os.environ: a DATABASE_URL in .env counts as set.
    get_settings.cache_clear()
    database_url = get_settings().database_url
    embedded = None if database_url else EmbeddedPostgres(Path(args.data_dir))
    try:
        # Inside the try: a Ctrl-C while the server starts still stops it.
        if embedded is not None:
            embedded.start()
            database_url = embedded.ensure_database(DEV_DATABASE)
            print(f"embedded PostgreSQL: data in {args.data_dir}")
        # Migrations, seeds and the server processes all use this one URL.
        os.environ["DATABASE_URL"] = database_url
        get_settings.cache_clear()
        migrate.upgrade()
        if not args.no_seed:
            seed_all(engine_from_settings())
        return serve(args)
    except KeyboardInterrupt:
        return 130
    finally:
        if embedded is not None:
            embedded.stop()
            print("embedded PostgreSQL stopped")


def serve(args: argparse.Namespace) -> int:
    # app/runtime/server.py, not `uvicorn --workers`: each worker gets its own SO_REUSEPORT
    # socket, so connections spread evenly and keep TCP_NODELAY (docs/performance.md).
    # It has no health ping either, so a busy worker is never killed mid-request.
    # The app logs one structured line per request itself: no uvicorn access log.
    command = serve_command("app.asgi:app", host=args.host, port=args.port, workers=args.workers)
    # Worker processes share their Prometheus samples through files in this folder;
    # it must start empty, or counters would carry over from the last run.
    metrics_dir = PROJECT_ROOT / ".data" / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    print(f"serving on http://{args.host}:{args.port} (docs at /docs), {args.workers} workers; Ctrl-C stops")
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the server too, a SIGTERM did not: either way,
        # ask it to stop and give it time to finish its requests.
        server.send_signal(signal.SIGINT)
        try:
            return server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            return server.wait()


if __name__ == "__main__":
    sys.exit(main())
