"""Seed the development registrar `registrar` / `registrar123`. Idempotent; never in production.

python -m scripts.seed_staff
"""

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from app.core.config import get_settings
from app.core.security import hash_password
from app.staff.models import StaffAccount, StaffRole
from scripts.seed_common import engine_from_settings

DEV_REGISTRAR_USERNAME = "registrar"
DEV_REGISTRAR_PASSWORD = "registrar123"


def seed_dev_registrar(engine: Engine, *, environment: str, rounds: int | None = None) -> bool:
    """Create the development registrar unless it exists (or ENVIRONMENT is production:
    a production database gets no default account; use scripts.create_staff).
    True when it was created now."""
    if environment == "production":
        return False
    password_hash = hash_password(DEV_REGISTRAR_PASSWORD, rounds=rounds or get_settings().bcrypt_rounds)
    with engine.begin() as connection:
        created = connection.execute(
            insert(StaffAccount)
            .values(
                username=DEV_REGISTRAR_USERNAME,
                name="Development Registrar",
                role=StaffRole.REGISTRAR.value,
                password_hash=password_hash,
            )
            .on_conflict_do_nothing(index_elements=[StaffAccount.username])
            .returning(StaffAccount.id)
        ).first()
    return created is not None


def main() -> None:
    environment = get_settings().environment
    created = seed_dev_registrar(engine_from_settings(), environment=environment)
    if environment == "production":
        print("staff: no development registrar in production (python -m scripts.create_staff)")
    else:
        print(f"staff: development registrar {'created' if created else 'already there'}")


if __name__ == "__main__":
    main()
