"""POST /auth/staff/login: the same password path as a student's, with the role in the token."""

import jwt
import pytest

from app.staff.models import ROLE_CHECK, StaffRole
from tests.support.api import bearer, login, staff_login


def test_staff_login_returns_tokens_that_name_the_staff_member_and_role(client, factory, settings):
    staff = factory.staff()
    response = staff_login(client, staff.username)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60
    claims = jwt.decode(body["access_token"], settings.secret_key, algorithms=["HS256"])
    assert (claims["sub"], claims["kind"], claims["role"], claims["username"]) == (
        str(staff.id),
        "staff",
        "registrar",
        staff.username,
    )
    assert client.get("/admin/whoami", headers=bearer(body["access_token"])).status_code == 200


def test_staff_login_with_a_wrong_password_is_401(client, factory):
    response = staff_login(client, factory.staff().username, "wrong password")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert response.headers["www-authenticate"] == "Bearer"


def test_staff_login_with_an_unknown_username_is_the_same_401_after_a_password_check(client, monkeypatch):
    from app.auth import service as auth_service

    checked = []
    real_verify = auth_service.verify_password

    def recording_verify(password, password_hash):
        checked.append(password_hash)
        return real_verify(password, password_hash)

    monkeypatch.setattr(auth_service, "verify_password", recording_verify)
    response = staff_login(client, "nobody-by-this-name")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert len(checked) == 1  # the dummy hash: an unknown username costs what a wrong password does


def test_a_student_cannot_log_in_as_staff_nor_staff_as_a_student(client, factory):
    student, staff = factory.student(), factory.staff()
    assert staff_login(client, student.student_number).status_code == 401
    assert login(client, staff.username).status_code == 401


def test_staff_logins_are_throttled_per_username(client, factory, settings):
    staff = factory.staff()
    for _ in range(settings.login_max_failures_per_client_and_student):
        assert staff_login(client, staff.username, "wrong password").status_code == 401
    response = staff_login(client, staff.username)  # even the right password, from this address, until the window ends
    assert response.status_code == 429
    assert response.json()["code"] == "TOO_MANY_LOGIN_ATTEMPTS"
    assert int(response.headers["retry-after"]) >= 1


def test_a_staff_username_and_a_student_number_count_apart(client, factory, settings):
    """A student number spelled like a staff username spends none of the staff member's attempts."""
    staff = factory.staff()
    for _ in range(settings.login_max_failures_per_client_and_student + 1):
        login(client, staff.username, "wrong password")
    assert staff_login(client, staff.username).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "registrar"},
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": "r" * 65, "password": "x"},
        {"username": "registrar", "password": "x" * 73},
        {"username": "regi\x00strar", "password": "x"},
    ],
)
def test_a_malformed_staff_login_is_422(client, body):
    response = client.post("/auth/staff/login", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_every_staff_role_is_allowed_by_the_database_check():
    for role in StaffRole:
        assert f"'{role.value}'" in ROLE_CHECK
