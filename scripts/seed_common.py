"""What the seed scripts share."""

from sqlalchemy import Engine, create_engine

from app.core.config import get_settings


def engine_from_settings() -> Engine:
    return create_engine(get_settings().require_database_url())
