"""Settings, read once from the environment (and `.env` when present)."""

from functools import lru_cache
from typing import Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET_KEY = "change-me-in-production-this-is-only-for-development"


def normalize_database_url(url: str) -> str:
    """Name the psycopg2 driver explicitly.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` URL to psycopg 3, which we do
    not install; ``postgres://`` (Heroku style) is not recognised at all.
    """
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # Database. Unset in development: `make run` starts an embedded PostgreSQL.
    database_url: str = ""
    db_pool_size: int = 20
    db_max_overflow: int = 20
    db_pool_timeout_seconds: float = 10.0
    # Bounds on how long one request may wait for a lock or run a statement.
    db_lock_timeout_ms: int = 5_000
    db_statement_timeout_ms: int = 15_000

    # Authentication.
    secret_key: str = DEVELOPMENT_SECRET_KEY
    access_token_expire_minutes: int = 60
    bcrypt_rounds: int = 12

    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @model_validator(mode="after")
    def _refuse_example_secret_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET_KEY:
            raise ValueError("SECRET_KEY must be set to a real secret when ENVIRONMENT=production")
        return self

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set. Use `make run` (which starts an embedded "
                "PostgreSQL) or export DATABASE_URL=postgresql://user:pass@host/db."
            )
        return self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
