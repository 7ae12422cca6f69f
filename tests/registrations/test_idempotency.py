"""Idempotency-Key: a retry replays the first success and changes nothing twice."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.idempotency.errors import IdempotencyKeyReused
from app.registrations import service
from app.registrations.models import CourseRegistration
from tests.support.concurrency import run_all_at_once
from tests.support.database import assert_invariants


def post(client, factory, student, course, action, key):
    headers = factory.auth(student) | {"Idempotency-Key": key}
    return client.post(f"/courses/{course.id}/{action}", headers=headers)


def registrations_of(engine, course):
    with Session(engine) as session:
        return session.scalar(
            select(func.count()).select_from(CourseRegistration).where(CourseRegistration.course_id == course.id)
        )


def test_retried_register_replays_the_first_answer_and_registers_once(client, factory, engine):
    course = factory.course(capacity=1, reserve_limit=5)
    factory_student = factory.student()
    client.post(f"/courses/{course.id}/register", headers=factory.auth(factory.student()))  # fills the seat
    key = str(uuid.uuid4())

    first = post(client, factory, factory_student, course, "register", key)
    assert first.status_code == 200
    assert first.json() == {"course_id": course.id, "status": "RESERVED", "reserve_position": 1}
    assert "Idempotent-Replayed" not in first.headers

    retry = post(client, factory, factory_student, course, "register", key)
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert registrations_of(engine, course) == 2


def test_retried_drop_replays_the_promotion_and_drops_once(client, factory, engine):
    course = factory.course(capacity=1, reserve_limit=5)
    enrolled, reserved, another = factory.students(3)
    for student in (enrolled, reserved, another):
        client.post(f"/courses/{course.id}/register", headers=factory.auth(student))
    key = "drop-" + uuid.uuid4().hex

    first = post(client, factory, enrolled, course, "drop", key)
    assert first.json()["promoted_student_id"] == str(reserved.id)
    retry = post(client, factory, enrolled, course, "drop", key)
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    # Without the key the same drop is simply "not registered": the retry did not drop twice.
    assert client.post(f"/courses/{course.id}/drop", headers=factory.auth(enrolled)).json()["code"] == "NOT_REGISTERED"
    body = client.get(f"/courses/{course.id}").json()
    assert (body["enrolled_count"], body["reserved_count"]) == (1, 1)


def test_same_key_for_a_different_request_is_409(client, factory):
    first_course, second_course = factory.course(), factory.course()
    student = factory.student()
    key = uuid.uuid4().hex
    assert post(client, factory, student, first_course, "register", key).status_code == 200
    for course, action in [(second_course, "register"), (first_course, "drop")]:
        response = post(client, factory, student, course, action, key)
        assert response.status_code == 409
        assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # The refused requests changed nothing.
    assert client.get(f"/courses/{second_course.id}").json()["enrolled_count"] == 0
    assert client.get(f"/courses/{first_course.id}").json()["enrolled_count"] == 1


def test_errors_are_not_stored_so_a_retry_runs_again(client, factory):
    course = factory.course(capacity=1, reserve_limit=0)
    holder, student = factory.students(2)
    client.post(f"/courses/{course.id}/register", headers=factory.auth(holder))
    key = uuid.uuid4().hex

    assert post(client, factory, student, course, "register", key).json()["code"] == "COURSE_FULL"
    client.post(f"/courses/{course.id}/drop", headers=factory.auth(holder))
    retry = post(client, factory, student, course, "register", key)
    assert retry.status_code == 200
    assert retry.json()["status"] == "ENROLLED"
    assert "Idempotent-Replayed" not in retry.headers


def test_keys_belong_to_one_student(client, factory):
    course = factory.course(capacity=5)
    first, second = factory.students(2)
    key = "shared-key"
    assert post(client, factory, first, course, "register", key).status_code == 200
    response = post(client, factory, second, course, "register", key)
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers
    assert client.get(f"/courses/{course.id}").json()["enrolled_count"] == 2


def test_an_expired_key_is_a_new_request(session, factory):
    course = factory.course(capacity=5)
    student = factory.student()
    now = datetime.now(UTC)
    service.register(
        session,
        student_id=student.id,
        course_id=course.id,
        now=now,
        idempotency_key="k",
        idempotency_ttl=timedelta(seconds=1),
    )
    service.drop(session, student_id=student.id, course_id=course.id, now=now)
    later = now + timedelta(seconds=2)
    # Within its lifetime the key would replay; expired, it registers again.
    result = service.register(session, student_id=student.id, course_id=course.id, now=later, idempotency_key="k")
    assert result.replayed is False
    with pytest.raises(IdempotencyKeyReused):  # and it now lives again, for "register" only
        service.drop(session, student_id=student.id, course_id=course.id, now=later, idempotency_key="k")


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode"])
def test_malformed_idempotency_key_is_422(client, factory, key):
    course = factory.course()
    response = client.post(
        f"/courses/{course.id}/register",
        headers=factory.auth(factory.student()) | {"Idempotency-Key": key.encode("utf-8")},
    )
    assert response.status_code == 422
    assert client.get(f"/courses/{course.id}").json()["enrolled_count"] == 0


@pytest.mark.live_server
def test_concurrent_retries_across_workers_register_once(live_server, factory, engine):
    course = factory.course(capacity=1, reserve_limit=10)
    filler, student = factory.students(2)
    headers = {"Authorization": f"Bearer {factory.token(filler)}"}
    httpx.post(f"{live_server.base_url}/courses/{course.id}/register", headers=headers)
    headers = {"Authorization": f"Bearer {factory.token(student)}", "Idempotency-Key": uuid.uuid4().hex}

    def send(_):
        response = httpx.post(f"{live_server.base_url}/courses/{course.id}/register", headers=headers, timeout=30)
        return response.status_code, response.json()

    answers = run_all_at_once(send, range(20))
    assert {status for status, _ in answers} == {200}
    assert [body for _, body in answers] == [answers[0][1]] * 20
    assert answers[0][1] == {"course_id": course.id, "status": "RESERVED", "reserve_position": 1}
    assert registrations_of(engine, course) == 2
    assert_invariants(engine)


def test_purge_removes_only_expired_keys(session, factory):
    from app.idempotency.models import IdempotencyKey
    from app.idempotency.service import purge_expired

    course = factory.course(capacity=5)
    student = factory.student()
    now = datetime.now(UTC)
    service.register(
        session,
        student_id=student.id,
        course_id=course.id,
        now=now,
        idempotency_key="old",
        idempotency_ttl=timedelta(seconds=1),
    )
    service.drop(session, student_id=student.id, course_id=course.id, now=now, idempotency_key="new")
    purge_expired(session, now=now + timedelta(seconds=5))
    with Session(session.get_bind()) as reader:
        keys = reader.scalars(select(IdempotencyKey.key).where(IdempotencyKey.student_id == student.id)).all()
    assert keys == ["new"]
