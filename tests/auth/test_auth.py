import base64
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.auth.errors import InvalidToken
from app.core.security import AccessTokens, create_access_token, decode_access_token
from tests.support.api import login


def test_login_returns_a_bearer_token_for_the_student(client, factory, settings):
    student = factory.student()
    response = login(client, student.student_number)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60
    claims = jwt.decode(body["access_token"], settings.secret_key, algorithms=["HS256"])
    assert claims["sub"] == str(student.id)
    assert claims["exp"] - claims["iat"] == settings.access_token_expire_minutes * 60


def test_login_with_wrong_password_is_401(client, factory):
    response = login(client, factory.student().student_number, "wrong password")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert response.headers["www-authenticate"] == "Bearer"


def test_login_with_unknown_student_number_is_the_same_401(client):
    response = login(client, "NO-SUCH-STUDENT")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"student_number": "STU1"},
        {"password": "x"},
        {"student_number": "", "password": "x"},
        {"student_number": 5, "password": "x"},
        {"student_number": "STU1", "password": "x" * 73},
        {"student_number": "STU1", "password": "é" * 37},  # 74 bytes
    ],
)
def test_malformed_login_is_422(client, body):
    response = client.post("/auth/login", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_login_body_that_is_not_json_is_422(client):
    response = client.post("/auth/login", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_me_returns_the_current_student(client, factory):
    student = factory.student()
    token = login(client, student.student_number).json()["access_token"]
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "id": str(student.id),
        "student_number": student.student_number,
        "name": student.name,
        "max_credits": 18,  # DEFAULT_MAX_CREDITS: the student has no limit of their own
        "completed_courses": [],
        "holds": [],
    }


def test_me_for_a_student_who_no_longer_exists_is_401(client, settings):
    token = create_access_token(student_id=uuid.uuid4(), student_number="GONE", settings=settings)
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


def test_missing_token_is_401_not_authenticated(client):
    response = client.get("/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(settings, student_id):
    now = datetime.now(UTC)
    good = create_access_token(student_id=student_id, student_number="S", settings=settings)
    header, _payload, signature = good.split(".")
    claims = {"sub": str(student_id), "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=1)).timestamp())}
    return {
        "expired": jwt.encode(
            {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}, settings.secret_key
        ),
        "not_yet_valid": jwt.encode({**claims, "nbf": now + timedelta(hours=1)}, settings.secret_key),
        "issued_in_the_future": jwt.encode(
            {**claims, "iat": now + timedelta(hours=1), "exp": now + timedelta(hours=2)}, settings.secret_key
        ),
        "wrong_key": jwt.encode(claims, "another-key-" + "y" * 32),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong_algorithm": jwt.encode(claims, settings.secret_key, algorithm="HS512"),
        "tampered_payload": f"{header}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        "missing_sub": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, settings.secret_key),
        "sub_not_a_uuid": jwt.encode({**claims, "sub": "STU10000"}, settings.secret_key),
        "missing_exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, settings.secret_key),
        "garbage": "not.a.token",
        "empty_segments": "..",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not_yet_valid",
        "issued_in_the_future",
        "wrong_key",
        "alg_none",
        "wrong_algorithm",
        "tampered_payload",
        "missing_sub",
        "sub_not_a_uuid",
        "missing_exp",
        "garbage",
        "empty_segments",
    ],
)
def test_bad_token_is_401_invalid_token(client, factory, settings, kind):
    student = factory.student()
    token = _bad_tokens(settings, student.id)[kind]
    for path, method in [("/auth/me", "GET"), ("/courses/1/register", "POST")]:
        response = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (kind, path)
        assert response.json()["code"] == "INVALID_TOKEN"
        assert response.headers["www-authenticate"] == "Bearer"


def test_non_bearer_authorization_scheme_is_401(client):
    response = client.get("/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_token_expiry_does_not_depend_on_the_host_time_zone(settings):
    original = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
        time.tzset()
        token = create_access_token(student_id=uuid.uuid4(), student_number="S", settings=settings)
    finally:
        if original is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = original
        time.tzset()
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    expected_exp = time.time() + settings.access_token_expire_minutes * 60
    assert abs(claims["exp"] - expected_exp) < 5
    decode_access_token(token, settings=settings)  # valid right now, wherever the host is


class MovableClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_is_refused_once_it_expires(settings):
    clock = MovableClock()
    tokens = AccessTokens(settings, clock=clock)
    student_id = uuid.uuid4()
    token = create_access_token(student_id=student_id, student_number="S1", settings=settings)

    assert tokens.verify(token).student_id == student_id
    clock.now += settings.access_token_expire_minutes * 60 - 5
    assert tokens.verify(token).student_id == student_id  # from memory, still valid
    clock.now += 10
    with pytest.raises(InvalidToken):
        tokens.verify(token)


def test_only_the_exact_token_verified_is_accepted_from_memory(settings):
    tokens = AccessTokens(settings)
    token = create_access_token(student_id=uuid.uuid4(), student_number="S1", settings=settings)
    tokens.verify(token)

    header, _payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"sub": str(uuid.uuid4()), "exp": 4102444800, "iat": 1}).encode()
    ).decode()
    for forged in (f"{header}.{forged_payload}.{signature}", token[:-2] + ("AA" if token[-2:] != "AA" else "BB")):
        with pytest.raises(InvalidToken):
            tokens.verify(forged)


def test_remembered_tokens_are_bounded(settings):
    tokens = AccessTokens(settings, max_entries=2)
    issued = [create_access_token(student_id=uuid.uuid4(), student_number=f"S{i}", settings=settings) for i in range(5)]
    for token in issued:
        tokens.verify(token)
    assert len(tokens._verified) == 2
    assert list(tokens._verified) == issued[-2:]
