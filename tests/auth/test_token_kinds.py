"""Access tokens say whom they are for: a student or a staff member, never both."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.auth.errors import InvalidToken
from app.core.security import (
    AccessTokens,
    StaffSubject,
    StudentSubject,
    create_access_token,
    create_staff_access_token,
    decode_access_token,
)


def test_a_student_token_decodes_to_a_student(settings):
    student_id = uuid.uuid4()
    subject = decode_access_token(
        create_access_token(student_id=student_id, student_number="S1", settings=settings), settings=settings
    )
    assert isinstance(subject, StudentSubject)
    assert (subject.student_id, subject.student_number, subject.subject_id) == (student_id, "S1", student_id)


def test_a_staff_token_decodes_to_a_staff_member_with_the_role(settings):
    staff_id = uuid.uuid4()
    token = create_staff_access_token(staff_id=staff_id, username="r", role="registrar", settings=settings)
    subject = decode_access_token(token, settings=settings)
    assert isinstance(subject, StaffSubject)
    assert (subject.staff_id, subject.username, subject.role) == (staff_id, "r", "registrar")


def _signed(settings, **claims) -> str:
    now = datetime.now(UTC)
    return jwt.encode(
        {"sub": str(uuid.uuid4()), "iat": now, "exp": now + timedelta(minutes=5), **claims}, settings.secret_key
    )


def test_a_token_signed_before_kinds_existed_is_a_students(settings):
    """Tokens issued by the previous release carry no `kind`: still valid students' tokens."""
    assert isinstance(decode_access_token(_signed(settings, student_number="S1"), settings=settings), StudentSubject)


@pytest.mark.parametrize("claims", [{"kind": "admin"}, {"kind": "staff"}, {"kind": "staff", "role": 5}, {"kind": 1}])
def test_a_token_of_an_unknown_kind_or_a_staff_token_without_a_role_is_refused(settings, claims):
    with pytest.raises(InvalidToken):
        decode_access_token(_signed(settings, **claims), settings=settings)


def test_remembered_tokens_keep_their_kind(settings):
    tokens = AccessTokens(settings)
    staff_token = create_staff_access_token(staff_id=uuid.uuid4(), username="r", role="registrar", settings=settings)
    first = tokens.verify(staff_token)
    assert tokens.verify(staff_token) is first
    assert isinstance(first, StaffSubject)
    assert first.expires_at > time.time()
