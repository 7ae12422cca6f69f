"""Refresh and logout, for students and staff: rotation, reuse detection, expiry, races."""

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.auth.models import RefreshToken
from app.staff.models import StaffAccount
from app.students.models import Student
from tests.support.api import bearer, login, logout, refresh, staff_login
from tests.support.concurrency import run_all_at_once
from tests.support.environment import TEST_PASSWORD
from tests.support.servers import answered_by_worker, start_server


def _refresh_row(engine, token: str) -> RefreshToken | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
        )


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "INVALID_REFRESH_TOKEN"
    assert response.headers["www-authenticate"] == "Bearer"


def test_login_returns_a_refresh_token_that_is_stored_only_as_its_hash(client, factory, engine, settings):
    student = factory.student()
    body = login(client, student.student_number).json()
    token = body["refresh_token"]
    assert len(token) >= 43  # 32 random bytes
    row = _refresh_row(engine, token)
    assert row is not None
    assert (row.subject_kind, row.subject_id, row.used_at, row.revoked_at) == ("student", student.id, None, None)
    assert row.expires_at - row.issued_at == timedelta(days=settings.refresh_token_expire_days)
    with Session(engine) as session:
        assert session.scalar(select(RefreshToken.id).where(RefreshToken.token_hash == token)) is None


def test_refresh_rotates_the_token_and_the_old_one_stops_working(client, factory, engine, settings):
    student = factory.student()
    first = login(client, student.student_number).json()

    response = refresh(client, first["refresh_token"])

    assert response.status_code == 200
    second = response.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["refresh_token"] != first["refresh_token"]
    claims = jwt.decode(second["access_token"], settings.secret_key, algorithms=["HS256"])
    assert (claims["sub"], claims["kind"]) == (str(student.id), "student")
    assert client.get("/auth/me", headers=bearer(second["access_token"])).json()["id"] == str(student.id)
    old, new = _refresh_row(engine, first["refresh_token"]), _refresh_row(engine, second["refresh_token"])
    assert old.used_at is not None and old.replaced_by == new.id and old.family_id == new.family_id
    # The newest one rotates in its turn.
    assert refresh(client, second["refresh_token"]).status_code == 200


def test_reusing_a_rotated_token_revokes_the_whole_family(client, factory, engine):
    student = factory.student()
    first = login(client, student.student_number).json()["refresh_token"]
    second = refresh(client, first).json()["refresh_token"]
    third = refresh(client, second).json()["refresh_token"]
    other_login = login(client, student.student_number).json()["refresh_token"]

    _assert_refused(refresh(client, first))  # a stolen copy of an old token

    _assert_refused(refresh(client, third))  # the newest token of that login is dead too
    family = _refresh_row(engine, first).family_id
    with Session(engine) as session:
        rows = session.scalars(select(RefreshToken).where(RefreshToken.family_id == family)).all()
    assert len(rows) == 3 and all(row.revoked_at is not None for row in rows)
    assert refresh(client, other_login).status_code == 200  # another login is another family


def test_a_staff_refresh_gives_a_staff_token(client, factory, settings):
    staff = factory.staff()
    first = staff_login(client, staff.username).json()
    second = refresh(client, first["refresh_token"]).json()
    claims = jwt.decode(second["access_token"], settings.secret_key, algorithms=["HS256"])
    assert (claims["sub"], claims["kind"], claims["role"]) == (str(staff.id), "staff", "registrar")
    assert client.get("/admin/whoami", headers=bearer(second["access_token"])).status_code == 200
    assert client.get("/auth/me", headers=bearer(second["access_token"])).status_code == 403


def test_logout_revokes_the_token_and_its_family(client, factory):
    student = factory.student()
    first = login(client, student.student_number).json()["refresh_token"]
    second = refresh(client, first).json()["refresh_token"]

    response = logout(client, second)

    assert response.status_code == 204
    assert response.content == b""
    _assert_refused(refresh(client, second))
    assert logout(client, second).status_code == 204  # again: the same answer, nothing to do


def test_logout_with_an_unknown_token_answers_the_same(client):
    assert logout(client, "x" * 43).status_code == 204


def test_an_expired_refresh_token_is_401(client, factory, engine):
    token = login(client, factory.student().student_number).json()["refresh_token"]
    with Session(engine) as session, session.begin():
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hashlib.sha256(token.encode()).hexdigest())
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    _assert_refused(refresh(client, token))


def test_an_unknown_refresh_token_is_401(client):
    _assert_refused(refresh(client, "A" * 43))


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": "not a token!"}, {"refresh_token": 5}])
def test_a_malformed_refresh_is_422(client, body):
    for path in ("/auth/refresh", "/auth/logout"):
        response = client.post(path, json=body)
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"


def test_a_refresh_for_a_student_who_no_longer_exists_is_401(client, factory, engine):
    student = factory.student()
    token = login(client, student.student_number).json()["refresh_token"]
    with Session(engine) as session, session.begin():
        session.execute(delete(Student).where(Student.id == student.id))
    _assert_refused(refresh(client, token))
    assert _refresh_row(engine, token).revoked_at is not None


def test_a_refresh_for_a_staff_account_that_no_longer_exists_is_401(client, factory, engine):
    staff = factory.staff()
    token = staff_login(client, staff.username).json()["refresh_token"]
    with Session(engine) as session, session.begin():
        session.execute(delete(StaffAccount).where(StaffAccount.id == staff.id))
    _assert_refused(refresh(client, token))


def test_concurrent_refreshes_of_one_token_in_one_process_give_exactly_one_success(client, factory):
    token = login(client, factory.student().student_number).json()["refresh_token"]
    statuses = run_all_at_once(lambda _: refresh(client, token).status_code, range(10))
    assert sorted(statuses) == [200] + [401] * 9


@pytest.fixture
def counted_server(database_url, tmp_path):
    """A server of two worker processes that count, per worker, the requests each answered."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = start_server(database_url, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    yield server, metrics_dir
    server.stop()


@pytest.mark.live_server
def test_concurrent_refreshes_across_two_worker_processes_give_exactly_one_success(counted_server, factory):
    """The same token sent 20 times at once to a server of two worker processes, each
    request on its own connection (SO_REUSEPORT spreads them over both): the claim's
    row lock lets exactly one through. The others present a token that is used by
    then, which is reuse: the login's newest token is revoked too."""
    server, metrics_dir = counted_server
    student = factory.student()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        body = client.post(
            "/auth/login", json={"student_number": student.student_number, "password": TEST_PASSWORD}
        ).json()

    def refresh_once(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=30) as own_connection:
            return own_connection.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})

    responses = run_all_at_once(refresh_once, range(20))

    assert len(answered_by_worker(metrics_dir, "/auth/refresh")) == 2  # both workers took part
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * 19
    assert {response.json()["code"] for response in responses if response.status_code == 401} == {
        "INVALID_REFRESH_TOKEN"
    }
    winner = next(response for response in responses if response.status_code == 200).json()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        after = client.post("/auth/refresh", json={"refresh_token": winner["refresh_token"]})
    assert after.status_code == 401
