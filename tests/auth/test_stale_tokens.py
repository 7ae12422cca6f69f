"""A token outlives its student: a validly signed token for a deleted student."""

import uuid

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.registrations.models import CourseRegistration
from app.students.models import Student


def test_register_with_the_token_of_a_deleted_student_is_401_and_writes_nothing(client, factory, engine):
    course = factory.course(capacity=5)
    student = factory.student()
    headers = factory.auth(student)
    with Session(engine) as session, session.begin():
        session.execute(delete(Student).where(Student.id == student.id))

    response = client.post(f"/courses/{course.id}/register", headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = client.get(f"/courses/{course.id}").json()
    assert (body["enrolled_count"], body["reserved_count"]) == (0, 0)
    with Session(engine) as session:
        rows = session.scalar(select(func.count()).where(CourseRegistration.course_id == course.id))
    assert rows == 0


def _token_for_nobody(factory) -> dict[str, str]:
    """A validly signed token for a student id that never existed."""
    from app.core.security import create_access_token

    token = create_access_token(student_id=uuid.uuid4(), student_number="GHOST", settings=factory.settings)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/me"),
        ("GET", "/semesters/{semester}/my-courses"),
        ("POST", "/courses/{course}/register"),
        ("POST", "/courses/{course}/drop"),
        # The waiting room's routes skip the lookup: their own statement finds out.
        ("POST", "/semesters/{semester}/queue"),
        ("GET", "/semesters/{semester}/queue/me"),
    ],
)
def test_every_authenticated_route_answers_401_for_a_student_who_does_not_exist(client, factory, method, path):
    course = factory.course()
    headers = _token_for_nobody(factory)
    response = client.request(method, path.format(semester=course.semester_id, course=course.id), headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def student_lookups(statements_by_engine) -> list[str]:
    return [statement for statement, _ in statements_by_engine["read"] if "FROM students" in statement]


def test_a_token_is_checked_against_the_students_once_then_remembered(client, factory, statements_by_engine):
    semester = factory.semester()
    student = factory.student()
    headers = factory.auth(student)
    for _ in range(3):
        assert client.get(f"/semesters/{semester.id}/my-courses", headers=headers).status_code == 200
    assert len(student_lookups(statements_by_engine)) == 1, statements_by_engine["read"]


def test_a_place_in_the_waiting_room_proves_the_student_exists_so_no_lookup_follows(
    client, factory, statements_by_engine
):
    semester = factory.semester()
    student = factory.student()
    headers = factory.auth(student)
    assert client.post(f"/semesters/{semester.id}/queue", headers=headers).status_code == 200
    assert client.get(f"/semesters/{semester.id}/queue/me", headers=headers).status_code == 200
    assert client.get(f"/semesters/{semester.id}/my-courses", headers=headers).status_code == 200
    assert student_lookups(statements_by_engine) == [], statements_by_engine["read"]


def test_a_deleted_students_place_request_is_401_and_not_remembered(client, factory, engine):
    semester = factory.semester()
    student = factory.student()
    headers = factory.auth(student)
    with Session(engine) as session, session.begin():
        session.execute(delete(Student).where(Student.id == student.id))

    response = client.post(f"/semesters/{semester.id}/queue", headers=headers)

    assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")
    # Not remembered as checked: the next request is refused the same way.
    response = client.get(f"/semesters/{semester.id}/my-courses", headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")
