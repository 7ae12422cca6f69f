"""Wait until DATABASE_URL accepts connections; the container stack's first step.

    python -m scripts.wait_for_db [--timeout 60]

Exits 0 once `SELECT 1` succeeds, 1 if the database is still unreachable after
the timeout. A healthcheck can pass while PostgreSQL's first start restarts
the server once more: this is the belt to that pair of braces.
"""

import argparse
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.core.config import get_settings


def wait_for_database(url: str, *, timeout: float) -> bool:
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return True
            except OperationalError as error:
                if time.monotonic() >= deadline:
                    print(f"database still unreachable after {timeout:.0f} s: {error.orig}", file=sys.stderr)
                    return False
                time.sleep(1)
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to keep trying (default 60)")
    args = parser.parse_args()
    if not wait_for_database(get_settings().require_database_url(), timeout=args.timeout):
        return 1
    print("database is up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
