"""Staff accounts in practice: scripts.create_staff, and the development registrar of `make run`."""

import os
import secrets
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.staff.models import StaffAccount
from scripts import migrate
from scripts.seed_staff import DEV_REGISTRAR_PASSWORD, DEV_REGISTRAR_USERNAME, seed_dev_registrar
from tests.support.api import staff_login
from tests.support.environment import PROJECT_ROOT, TEST_ENV
from tests.support.factory import unique


def create_staff(database_url: str, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    """Run the script as an operator would: its own process, the URL from the environment."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.create_staff", *args, "--password-stdin"],
        cwd=PROJECT_ROOT,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **TEST_ENV, "DATABASE_URL": database_url},
    )


@pytest.mark.slow  # subprocesses of its own
def test_create_staff_makes_an_account_that_can_log_in_and_refuses_a_duplicate(database_url, client):
    username = unique("clerk")
    created = create_staff(database_url, "--username", username, "--name", "Jane Doe", password="s3cret-enough")
    assert created.returncode == 0, created.stderr
    assert username in created.stdout

    response = staff_login(client, username, "s3cret-enough")
    assert response.status_code == 200
    whoami = client.get("/admin/whoami", headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    assert whoami.json()["name"] == "Jane Doe"

    again = create_staff(database_url, "--username", username, "--name", "Someone Else", password="another-one")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert staff_login(client, username, "another-one").status_code == 401  # the first account is untouched


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "password", "complaint"),
    [
        (("--name", "N"), "long enough", "username"),
        (("--name", "N", "--role", "superuser"), "long enough", "invalid choice"),
        (("--name", "N"), "short", "at least 8"),
        (("--name", "N"), "x" * 73, "72 bytes"),
    ],
)
def test_create_staff_refuses_bad_input_and_writes_nothing(database_url, engine, args, password, complaint):
    username = "bad name!" if complaint == "username" else unique("clerk")
    result = create_staff(database_url, "--username", username, *args, password=password)
    assert result.returncode != 0
    assert complaint in result.stderr
    assert _accounts_named(engine, username) == 0


def _accounts_named(engine, username: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(StaffAccount.username == username))


def test_the_development_registrar_is_seeded_once_and_can_log_in(engine, client, settings):
    seed_dev_registrar(engine, environment="development", rounds=settings.bcrypt_rounds)
    assert seed_dev_registrar(engine, environment="development", rounds=settings.bcrypt_rounds) is False
    response = staff_login(client, DEV_REGISTRAR_USERNAME, DEV_REGISTRAR_PASSWORD)
    assert response.status_code == 200


def test_production_gets_no_default_staff_account(create_database):
    url = create_database(f"course_reg_prod_{secrets.token_hex(4)}")
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        assert seed_dev_registrar(engine, environment="production") is False
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(StaffAccount)) == 0
    finally:
        engine.dispose()
