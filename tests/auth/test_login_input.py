"""Login input that must never reach PostgreSQL or bcrypt, and the cost of a failed login."""

import bcrypt
import pytest

from tests.support.api import login
from tests.support.environment import TEST_PASSWORD


@pytest.mark.parametrize(
    ("student_number", "password"),
    [
        ("STU\x0010000", TEST_PASSWORD),
        ("\x00", TEST_PASSWORD),
        ("STU10000", "test\x00123"),
    ],
    ids=["nul-inside-student-number", "only-nul-student-number", "nul-inside-password"],
)
def test_login_with_a_nul_character_is_422_validation_error(client, student_number, password):
    response = login(client, student_number, password)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_nul_in_the_password_of_a_real_student_is_refused_not_truncated(client, factory):
    # A C bcrypt would read "correct horse\0anything" as "correct horse".
    student = factory.student()
    response = login(client, student.student_number, TEST_PASSWORD + "\x00anything")
    assert response.status_code == 422
    assert login(client, student.student_number).status_code == 200


@pytest.fixture
def checkpw_calls(monkeypatch):
    """Every bcrypt check the login makes, as (password, hash) pairs; bcrypt still runs."""
    calls = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append((password, hashed))
        return real_checkpw(password, hashed)

    # app.core.security calls bcrypt.checkpw through the module attribute.
    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    return calls


def _cost(bcrypt_hash: bytes) -> bytes:
    # "$2b$12$<salt+hash>": the version and cost factor.
    return bcrypt_hash[:7]


def test_unknown_student_number_costs_one_bcrypt_check_like_a_wrong_password(client, factory, checkpw_calls):
    student = factory.student()

    assert login(client, student.student_number, "wrong password").status_code == 401
    wrong_password_checks = list(checkpw_calls)
    checkpw_calls.clear()
    assert login(client, "NO-SUCH-STUDENT-" + student.student_number[-10:], "wrong password").status_code == 401
    unknown_student_checks = list(checkpw_calls)

    assert len(wrong_password_checks) == 1
    assert len(unknown_student_checks) == 1
    # The same work factor: the dummy hash is as expensive as a real student's.
    assert (
        _cost(unknown_student_checks[0][1])
        == _cost(wrong_password_checks[0][1])
        == _cost(student.password_hash.encode())
    )
    assert unknown_student_checks[0][1] != student.password_hash.encode()
