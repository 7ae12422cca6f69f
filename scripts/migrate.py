"""Run Alembic migrations against a given URL or the configured DATABASE_URL.

python -m scripts.migrate            # upgrade to head
python -m scripts.migrate base       # downgrade everything
"""

import sys
from pathlib import Path

from alembic.config import Config

from alembic import command

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "head"
    if target == "head":
        upgrade()
    else:
        downgrade(revision=target)


if __name__ == "__main__":
    main()
