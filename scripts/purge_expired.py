"""Delete expired Idempotency-Key responses, login-throttle windows that ended
(every scope: per account and address, account, address, successful logins) and
expired refresh tokens.

Neither is needed for correctness (expired rows are ignored and replaced);
this keeps the tables small. Run it from cron, e.g. hourly:

    python -m scripts.purge_expired
"""

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.auth import refresh_tokens
from app.auth.throttle import purge_stale
from app.idempotency.service import purge_expired
from scripts.seed_common import engine_from_settings


def main() -> None:
    now = datetime.now(UTC)
    with Session(engine_from_settings()) as session:
        keys = purge_expired(session, now=now)
        throttles = purge_stale(session, now=now)
        tokens = refresh_tokens.purge_expired(session, now=now)
    print(
        f"purged {keys} expired idempotency keys, {throttles} stale login throttles and {tokens} expired refresh tokens"
    )


if __name__ == "__main__":
    main()
