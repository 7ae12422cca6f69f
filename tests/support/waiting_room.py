"""Asking for places and waiting for them, as a client of the waiting room does."""

import time
from typing import Any

import jwt
from fastapi.testclient import TestClient
from httpx import Response

from app.semesters.models import Semester
from app.students.models import Student
from tests.support.factory import Factory

ADMISSION_HEADER = "X-Admission-Token"


def set_room(
    client: TestClient, registrar: dict[str, str], semester_id: int, *, enabled: Any, rate: Any = None
) -> Response:
    """The registrar's switch (values passed as given, valid or not)."""
    return client.put(
        f"/admin/semesters/{semester_id}/waiting-room", json={"enabled": enabled, "rate_per_s": rate}, headers=registrar
    )


def take_place(client: Any, factory: Factory, student: Student, semester: Semester | int) -> Response:
    semester_id = semester if isinstance(semester, int) else semester.id
    return client.post(f"/semesters/{semester_id}/queue", headers=factory.auth(student))


def my_place(client: Any, factory: Factory, student: Student, semester: Semester | int) -> Response:
    semester_id = semester if isinstance(semester, int) else semester.id
    return client.get(f"/semesters/{semester_id}/queue/me", headers=factory.auth(student))


def ticket_of(admission_token: str) -> int:
    """The ticket an admission token carries (read without checking its signature)."""
    ticket: int = jwt.decode(admission_token, options={"verify_signature": False})["tkt"]
    return ticket


def with_admission(factory: Factory, student: Student, admission_token: str) -> dict[str, str]:
    return {**factory.auth(student), ADMISSION_HEADER: admission_token}


def wait_until_admitted(
    client: Any, factory: Factory, student: Student, semester: Semester | int, *, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the place (faster than Retry-After says: tests use short intervals) until it is admitted."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = my_place(client, factory, student, semester).json()
        if body["admitted"]:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"not admitted within {timeout} s: {body}")
        time.sleep(0.05)
