"""Who may call what: registrar tokens on /admin, student tokens on student routes, never crossed."""

import asyncio
import json
import logging
import re
import time
import uuid

import pytest
from sqlalchemy import delete, event
from sqlalchemy.orm import Session

from app.auth.dependencies import RequireRegistrar, require_role
from app.auth.errors import Forbidden
from app.core.security import StaffSubject, create_staff_access_token
from app.staff.models import StaffAccount, StaffRole


def test_whoami_returns_the_registrar(client, factory):
    staff = factory.staff()
    response = client.get("/admin/whoami", headers=factory.staff_auth(staff))
    assert response.status_code == 200
    assert response.json() == {"id": str(staff.id), "username": staff.username, "name": staff.name, "role": "registrar"}


def test_whoami_without_a_token_is_401(client):
    response = client.get("/admin/whoami")
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_whoami_with_a_student_token_is_403_forbidden(client, factory):
    response = client.get("/admin/whoami", headers=factory.auth(factory.student()))
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_a_staff_token_of_another_role_is_403_forbidden():
    """Only `registrar` exists today: the role check itself, with a role the token could carry tomorrow."""
    require_registrar = RequireRegistrar.dependency
    auditor = StaffSubject(staff_id=uuid.uuid4(), username="a", role="auditor", expires_at=int(time.time()) + 60)
    with pytest.raises(Forbidden):
        asyncio.run(require_registrar(auditor))
    registrar = StaffSubject(staff_id=uuid.uuid4(), username="r", role="registrar", expires_at=int(time.time()) + 60)
    assert asyncio.run(require_registrar(registrar)) is registrar
    # require_role builds a new dependency each call: routers share the one RequireRegistrar.
    assert require_role(StaffRole.REGISTRAR) is not require_registrar


def _admin_operations(app) -> list[tuple[str, str]]:
    """(method, path) of every /admin operation in the OpenAPI document, ids filled with 1."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/admin/")
        for method in item
    ]


def test_every_admin_route_refuses_no_token_and_a_student_token(app, client, factory):
    """For every /admin route, present and future: the router-level RequireRegistrar runs first."""
    operations = _admin_operations(app)
    assert ("GET", "/admin/whoami") in operations
    student_headers = factory.auth(factory.student())
    for method, path in operations:
        anonymous = client.request(method, path)
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "NOT_AUTHENTICATED"), (method, path)
        student = client.request(method, path, headers=student_headers)
        assert (student.status_code, student.json()["code"]) == (403, "FORBIDDEN"), (method, path)
    document = app.openapi()
    for path, item in document["paths"].items():
        if path.startswith("/admin/"):
            for operation in item.values():
                assert operation["tags"] == ["admin"], path
                assert "403" in operation["responses"], path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/me"),
        ("GET", "/semesters/{semester}/my-courses"),
        ("POST", "/courses/{course}/register"),
        ("POST", "/courses/{course}/drop"),
    ],
)
def test_a_staff_token_on_a_student_route_is_403_and_writes_nothing(client, factory, method, path):
    course = factory.course()
    response = client.request(
        method,
        path.format(semester=course.semester_id, course=course.id),
        headers=factory.staff_auth(factory.staff()),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert client.get(f"/courses/{course.id}").json()["enrolled_count"] == 0


def test_the_token_of_a_deleted_staff_account_is_401(client, factory, engine):
    staff = factory.staff()
    headers = factory.staff_auth(staff)
    with Session(engine) as session, session.begin():
        session.execute(delete(StaffAccount).where(StaffAccount.id == staff.id))
    response = client.get("/admin/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


def test_a_token_whose_role_the_account_no_longer_has_is_401(client, factory, settings):
    staff = factory.staff()
    token = create_staff_access_token(staff_id=staff.id, username=staff.username, role="auditor", settings=settings)
    response = client.get("/admin/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


def test_a_staff_token_is_checked_against_the_accounts_once_then_remembered(app, client, factory):
    headers = factory.staff_auth(factory.staff())
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(app.state.read_engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert client.get("/admin/whoami", headers=headers).status_code == 200
    finally:
        event.remove(app.state.read_engine, "before_cursor_execute", record)
    role_checks = [statement for statement in statements if "SELECT staff_accounts.role" in statement]
    assert len(role_checks) == 1, statements


def test_the_access_log_names_the_staff_member(client, factory, caplog):
    staff = factory.staff()
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.get("/admin/whoami", headers=factory.staff_auth(staff))
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "app.access"]
    assert [(line["staff_id"], line["student_id"]) for line in lines] == [(str(staff.id), None)]


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_a_browser_may_send_the_admin_methods_from_an_allowed_origin(client, method):
    """A registrar's browser tool (a dev server origin here) is let through the preflight."""
    response = client.options(
        "/admin/courses/1",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": method},
    )
    assert response.status_code == 200
    assert method in response.headers["access-control-allow-methods"]
