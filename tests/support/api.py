"""Requests the API tests make over and over, through a TestClient."""

from fastapi.testclient import TestClient
from httpx import Response

from app.courses.models import Course
from app.students.models import Student
from tests.support.environment import TEST_PASSWORD
from tests.support.factory import Factory


def login(client: TestClient, student_number: str, password: str = TEST_PASSWORD) -> Response:
    return client.post("/auth/login", json={"student_number": student_number, "password": password})


def staff_login(client: TestClient, username: str, password: str = TEST_PASSWORD) -> Response:
    return client.post("/auth/staff/login", json={"username": username, "password": password})


def refresh(client: TestClient, refresh_token: str) -> Response:
    return client.post("/auth/refresh", json={"refresh_token": refresh_token})


def logout(client: TestClient, refresh_token: str) -> Response:
    return client.post("/auth/logout", json={"refresh_token": refresh_token})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def register(client: TestClient, factory: Factory, student: Student, course: Course) -> Response:
    return client.post(f"/courses/{course.id}/register", headers=factory.auth(student))


def drop(client: TestClient, factory: Factory, student: Student, course: Course) -> Response:
    return client.post(f"/courses/{course.id}/drop", headers=factory.auth(student))


def course_counts(client: TestClient, course: Course) -> tuple[int, int]:
    """(enrolled, reserved) as GET /courses/{id} reports them."""
    body = client.get(f"/courses/{course.id}").json()
    return body["enrolled_count"], body["reserved_count"]
