"""The list of error codes is written once (app/core/errors.py, ERROR_CODES); every
copy of it is checked here: the OpenAPI document, the README's table, and the
codes the load-test client accepts as expected refusals. And a constraint the
database enforces that reaches the edge is a 409 or 404 with a code, never a 500.
"""

import ast
import re

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.core.cache import CachedRoute
from app.core.errors import ERROR_CODES
from app.main import create_app
from tests.support.environment import PROJECT_ROOT


def readme_error_table() -> dict[str, int]:
    """`code -> status` from the README's table under **Errors**."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("**Errors**") :].split("\n\n")[1]
    codes: dict[str, int] = {}
    for row in table.splitlines():
        status = re.match(r"\| (\d{3}) \|", row)
        if status:
            # Remarks in parentheses may name settings: only the codes outside them count.
            for code in re.findall(r"`([A-Z][A-Z_]+)`", re.sub(r"\([^)]*\)", "", row)):
                codes[code] = int(status.group(1))
    return codes


def test_the_readme_table_lists_every_code_with_its_status(app):
    documented = readme_error_table()
    actual = {code: error.status_code for code, error in ERROR_CODES.items()}
    assert documented == actual


def test_the_openapi_document_names_every_code_under_its_status(app):
    document = app.openapi()
    described: dict[str, set[int]] = {}
    responses = [
        (int(status), response)
        for path_item in document["paths"].values()
        for operation in path_item.values()
        for status, response in operation["responses"].items()
        if not status.startswith("2")  # successes (200, logout's 204) name no codes
    ]
    components = document["components"]["responses"]
    responses += [
        (404, components["NotFound"]),
        (405, components["MethodNotAllowed"]),
        (400, components["CorsPreflightRefused"]),
        (431, components["RequestHeadTooLarge"]),
        (408, components["RequestHeadTimeout"]),
    ]
    for status, response in responses:
        for code in re.findall(r"[A-Z][A-Z_]{3,}", response["description"].split(":", 1)[1]):
            described.setdefault(code, set()).add(status)
    assert described == {code: {error.status_code} for code, error in ERROR_CODES.items()}
    assert document["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"] == sorted(ERROR_CODES)


def _load_client() -> ast.Module:
    """locustfiles/_client.py, read as source: importing locust would patch this process with gevent."""
    return ast.parse((PROJECT_ROOT / "locustfiles" / "_client.py").read_text())


def _expected_refusals_in_load_client() -> dict[str, int]:
    """The client's EXPECTED_REFUSALS: code -> the status `call()` accepts it with."""
    for node in ast.walk(_load_client()):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "EXPECTED_REFUSALS" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("locustfiles/_client.py defines no EXPECTED_REFUSALS")


def _allowed_codes_in_load_client() -> set[str]:
    """Every code the Locust client passes as `allowed=`."""
    codes = set()
    for node in ast.walk(_load_client()):
        if isinstance(node, ast.keyword) and node.arg == "allowed":
            codes |= {element.value for element in ast.walk(node.value) if isinstance(element, ast.Constant)}
    return codes


def test_the_load_client_expects_only_real_codes_with_their_real_status(app):
    expected = _expected_refusals_in_load_client()
    assert {"COURSE_FULL", "REGISTRATION_HOLD", "PREREQUISITE_MISSING"} <= set(expected)
    for code, status in expected.items():
        assert code in ERROR_CODES, code
        # `call()` accepts a refusal only with this status: it must be the code's own.
        assert ERROR_CODES[code].status_code == status, code


def test_every_refusal_a_load_request_allows_is_an_expected_one(app):
    allowed = _allowed_codes_in_load_client()
    assert allowed, "the client accepts some refusals (COURSE_FULL at least)"
    assert allowed <= set(_expected_refusals_in_load_client())
    # Every refusal a student can meet in the rush of issue 12 is among them.
    rush = {"COURSE_CANCELLED", "APPOINTMENT_NOT_STARTED", "REGISTRATION_HOLD", "PREREQUISITE_MISSING"}
    rush |= {"SCHEDULE_CONFLICT", "CREDIT_LIMIT_EXCEEDED", "SWAP_NEEDS_SEAT", "COURSE_FULL", "ALREADY_REGISTERED"}
    assert rush <= allowed


def test_a_domain_error_code_cannot_change_its_status():
    from app.core.errors import DomainError

    with pytest.raises(ValueError, match="COURSE_FULL"):

        class Impostor(DomainError):
            status_code = 400
            code = "COURSE_FULL"


# ---- constraints at the edge --------------------------------------------------------------------


@pytest.fixture
def violating_client(settings, factory):
    """The real app with one more route that breaks a constraint on purpose, as a bug
    or a race would: the check would over-fill a course, the unique a second
    registration, the foreign key a registration for a course that is gone."""
    app = create_app(settings)
    course = factory.course(capacity=1)
    student = factory.student()
    statements = {
        "check": ("UPDATE courses SET enrolled_count = max_capacity + 1 WHERE id = :course", {}),
        "unique": (
            "INSERT INTO course_registrations (student_id, course_id, status) "
            "VALUES (:student, :course, 'ENROLLED'), (:student, :course, 'ENROLLED')",
            {},
        ),
        "foreign_key": (
            "INSERT INTO course_registrations (student_id, course_id, status) VALUES (:student, -1, 'ENROLLED')",
            {},
        ),
    }

    def violate(kind: str, request: Request) -> dict[str, str]:
        statement, _ = statements[kind]
        with request.app.state.session_factory() as session, session.begin():
            session.execute(text(statement), {"course": course.id, "student": student.id})
        return {"status": "written"}

    app.add_api_route("/test-only/violate/{kind}", violate, methods=["POST"])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, course


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("check", 409, "CONFLICT"), ("unique", 409, "CONFLICT"), ("foreign_key", 404, "REFERENCED_ROW_NOT_FOUND")],
)
def test_an_integrity_error_at_the_edge_is_a_coded_answer_and_writes_nothing(
    violating_client, raw_engine, kind, status, code
):
    client, course = violating_client
    response = client.post(f"/test-only/violate/{kind}")
    assert (response.status_code, response.json()["code"]) == (status, code)
    with raw_engine.connect() as connection:
        enrolled = connection.scalar(text("SELECT enrolled_count FROM courses WHERE id = :id"), {"id": course.id})
        rows = connection.scalar(
            text("SELECT count(*) FROM course_registrations WHERE course_id = :id"), {"id": course.id}
        )
    assert (enrolled, rows) == (0, 0)


# ---- the cached route class -----------------------------------------------------------------------


def test_a_cached_router_refuses_a_write_route():
    router = APIRouter(route_class=CachedRoute)
    with pytest.raises(TypeError, match="GET and HEAD only"):

        @router.post("/semesters/{semester_id}/courses")
        def write_something() -> None:
            """Never reached: building the route fails."""


def test_a_cached_router_accepts_reads():
    router = APIRouter(route_class=CachedRoute)

    @router.get("/things")
    def read_things() -> list[int]:
        return []

    assert [route.path for route in router.routes] == ["/things"]
