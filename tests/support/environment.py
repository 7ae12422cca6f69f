"""Where the project is, and the settings every test process and test server runs with."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_PASSWORD = "correct horse"
TEST_ENV = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-" + "x" * 32,
    "BCRYPT_ROUNDS": "4",  # the cheapest cost bcrypt allows: tests log in a lot
    # Reads show exactly what was just written; the catalogue cache has its own
    # tests (tests/catalogue/test_catalogue_cache.py).
    "CATALOGUE_CACHE_SECONDS": "0",
    "DB_LOCK_TIMEOUT_MS": "5000",
    "LOG_LEVEL": "WARNING",
    # Every TestClient request comes from one address; the per-client limits are
    # tested with their own settings (tests/auth/test_login_throttle.py, test_login_protection.py).
    "LOGIN_MAX_FAILURES_PER_CLIENT": "1000000",
    "LOGIN_MAX_SUCCESSES_PER_CLIENT": "1000000",
}
