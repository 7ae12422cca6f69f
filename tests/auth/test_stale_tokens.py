"""A token outlives its student: a validly signed token for a deleted student."""

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
