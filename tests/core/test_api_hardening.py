"""Resource limits, paging, CORS, request ids, logs, metrics and generic 500s."""

import json
import logging
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.core.config import DEVELOPMENT_SECRET_KEY, Settings
from app.main import create_app
from tests.support.servers import answered_by_worker, start_server


def test_production_refuses_the_example_secret_key():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", secret_key=DEVELOPMENT_SECRET_KEY, database_url="postgresql://x/y")
    Settings(environment="production", secret_key="a-real-secret-" + "z" * 40)


@pytest.mark.parametrize("secret_key", ["", "short", "s" * 31, "é" * 15 + "s"])  # the last: 31 bytes in UTF-8
def test_production_refuses_a_secret_key_shorter_than_32_bytes(secret_key):
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(environment="production", secret_key=secret_key, database_url="postgresql://x/y")
    Settings(environment="development", secret_key=secret_key)  # only production insists
    Settings(environment="production", secret_key="s" * 32, database_url="postgresql://x/y")


def test_no_route_takes_a_student_id_from_the_client(app):
    """Object-level authorization: the acting student comes only from the token. The
    registrar's routes name students on purpose (a registrar acts on anybody's record);
    every one of them needs a registrar token (tests/admin/test_admin_access.py)."""
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/admin/"):
            continue
        assert "student" not in path.lower(), path
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                assert "student" not in parameter["name"].lower(), (path, parameter["name"])
            body = json.dumps(operation.get("requestBody", {}))
            assert "student_id" not in body, path


# ---- body size -----------------------------------------------------------------


def test_oversized_body_is_413(client, settings):
    big = {"student_number": "STU10000", "password": "x", "padding": "y" * (settings.max_request_body_bytes + 1)}
    response = client.post("/auth/login", json=big)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_oversized_chunked_body_is_413(client, settings):
    def chunks():
        for _ in range(settings.max_request_body_bytes // 1024 + 2):
            yield b"x" * 1024

    response = client.post("/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


# ---- paging --------------------------------------------------------------------


def test_course_list_pages_with_limit_offset_and_total_header(client, factory):
    semester = factory.semester()
    courses = [factory.course(semester) for _ in range(5)]
    ids = [course.id for course in courses]

    whole = client.get(f"/semesters/{semester.id}/courses")
    assert [c["id"] for c in whole.json()] == ids
    assert whole.headers["X-Total-Count"] == "5"

    page = client.get(f"/semesters/{semester.id}/courses", params={"limit": 2, "offset": 2})
    assert [c["id"] for c in page.json()] == ids[2:4]
    assert page.headers["X-Total-Count"] == "5"

    past_the_end = client.get(f"/semesters/{semester.id}/courses", params={"limit": 2, "offset": 10})
    assert past_the_end.json() == []
    assert past_the_end.headers["X-Total-Count"] == "5"


def test_semester_list_reports_its_total(client, factory):
    factory.semester()
    response = client.get("/semesters/", params={"limit": 1})
    assert len(response.json()) == 1
    assert int(response.headers["X-Total-Count"]) >= 1


def test_my_courses_pages_too(client, factory):
    semester = factory.semester()
    courses = [factory.course(semester) for _ in range(3)]
    student = factory.student()
    for course in courses:
        client.post(f"/courses/{course.id}/register", headers=factory.auth(student))
    url = f"/semesters/{semester.id}/my-courses"
    page = client.get(url, params={"limit": 2, "offset": 1}, headers=factory.auth(student))
    assert [item["course_id"] for item in page.json()] == [courses[1].id, courses[2].id]
    assert page.headers["X-Total-Count"] == "3"
    beyond = client.get(url, params={"offset": 5}, headers=factory.auth(student))
    assert beyond.json() == []
    assert beyond.headers["X-Total-Count"] == "3"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "ten"}])
def test_page_size_is_capped(client, params):
    response = client.get("/semesters/", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


# ---- CORS ----------------------------------------------------------------------


def _preflight(client, origin):
    return client.options(
        "/courses/1/register",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_allows_the_configured_origin_without_credentials(settings):
    configured = settings.model_copy(update={"cors_allowed_origins": "https://register.example.edu"})
    with TestClient(create_app(configured)) as client:
        allowed = _preflight(client, "https://register.example.edu")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://register.example.edu"
        assert "access-control-allow-credentials" not in allowed.headers
        refused = _preflight(client, "https://evil.example.com")
        assert "access-control-allow-origin" not in refused.headers


def test_cors_on_simple_requests_answers_browsers_and_leaves_other_clients_alone(settings):
    configured = settings.model_copy(update={"cors_allowed_origins": "https://register.example.edu"})
    with TestClient(create_app(configured)) as client:
        browser = client.get("/health", headers={"Origin": "https://register.example.edu"})
        assert browser.headers["access-control-allow-origin"] == "https://register.example.edu"
        assert "X-Request-ID" in browser.headers["access-control-expose-headers"]
        assert "Origin" in browser.headers["vary"]
        other_site = client.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other_site.headers
        app_client = client.get("/health")
        assert "access-control-allow-origin" not in app_client.headers
        assert "access-control-expose-headers" not in app_client.headers
        # Without it a shared cache could hand this answer to a browser.
        assert app_client.headers["vary"] == "Origin"


def test_cors_defaults_to_localhost_in_development_and_nothing_in_production(settings):
    development = settings.model_copy(update={"environment": "development"})
    assert "http://localhost:3000" in development.cors_origins
    production = settings.model_copy(update={"environment": "production", "secret_key": "s" * 48})
    assert production.cors_origins == []
    with TestClient(create_app(production)) as client:
        assert "access-control-allow-origin" not in _preflight(client, "http://localhost:3000").headers


# ---- request ids, logs, errors -----------------------------------------------------


def test_request_id_is_generated_or_honoured(client):
    generated = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    forged = client.get("/health", headers={"X-Request-ID": "bad\nid"}).headers["X-Request-ID"]
    assert forged != "bad\nid"


def test_each_request_logs_one_structured_line(client, factory, caplog):
    course = factory.course()
    student = factory.student()
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.post(f"/courses/{course.id}/register", headers=factory.auth(student) | {"X-Request-ID": "req-42"})
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "app.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "POST"
    assert line["route"] == "/courses/{course_id}/register"
    assert line["status"] == 200
    assert line["request_id"] == "req-42"
    assert line["student_id"] == str(student.id)
    assert line["duration_ms"] >= 0


def test_unexpected_error_is_a_generic_500_with_a_request_id(settings, caplog):
    app = create_app(settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals: password=hunter2")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR"
    assert body["detail"] == "Internal server error"
    assert "hunter2" not in response.text
    assert body["request_id"]
    assert body["request_id"] in caplog.text
    assert "hunter2" in caplog.text  # the log has the detail


# ---- metrics -------------------------------------------------------------------------


def _sample(metrics_text, name, labels):
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            label_text, value = line.rsplit(" ", 1)
            found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(value)
    return total


def test_metrics_count_requests_per_route_template(client, factory):
    course = factory.course()
    labels = {"route": "/courses/{course_id}", "status": "200"}
    before = _sample(client.get("/metrics").text, "http_requests_total", labels)
    for _ in range(3):
        client.get(f"/courses/{course.id}")
    text = client.get("/metrics").text
    assert _sample(text, "http_requests_total", labels) == before + 3
    assert "http_request_duration_seconds_bucket" in text
    assert f'/courses/{course.id}"' not in text  # raw paths never become labels


@pytest.mark.live_server
def test_metrics_add_up_across_worker_processes(database_url, tmp_path):
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    server = start_server(database_url, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)})
    try:
        with httpx.Client(base_url=server.base_url) as http:
            for _ in range(40):
                http.get("/health", headers={"Connection": "close"})  # new connections spread over workers
            counts = {
                _sample(
                    http.get("/metrics", headers={"Connection": "close"}).text,
                    "http_requests_total",
                    {"route": "/health"},
                )
                for _ in range(6)
            }
            histogram = http.get("/metrics", headers={"Connection": "close"}).text
        assert counts == {40.0}
        # The latency histogram adds up across workers too: one observation per request.
        assert _sample(histogram, "http_request_duration_seconds_count", {"route": "/health"}) == 40.0
        assert _sample(histogram, "http_request_duration_seconds_bucket", {"route": "/health", "le": "+Inf"}) == 40.0
        # Both workers answered some of them (40 all on one worker: 1 in 500 billion).
        per_worker = answered_by_worker(multiproc_dir, "/health")
        assert sum(per_worker.values()) == 40.0 and len(per_worker) == 2, per_worker
    finally:
        server.stop()
