"""What the edge answers before any route: Host names, HEAD, redirects, and JSON
for every refusal (unknown path, wrong method, refused CORS preflight)."""

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.edge import host_matches
from app.main import create_app


@pytest.fixture
def strict_host_client(settings):
    strict = settings.model_copy(
        update={"allowed_hosts": "api.example.edu, *.campus.edu", "cors_allowed_origins": "https://app.example.edu"}
    )
    with TestClient(create_app(strict), base_url="http://api.example.edu") as client:
        yield client


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.edu", True),
        ("api.example.edu:8500", True),
        ("API.EXAMPLE.EDU", True),
        ("lab.campus.edu", True),
        ("campus.edu", False),  # *.campus.edu is its subdomains only
        ("evilcampus.edu", False),
        ("evil.example", False),
        ("api.example.edu.evil.example", False),
        ("", False),
    ],
)
def test_only_the_allowed_host_names_are_served(strict_host_client, host, allowed):
    response = strict_host_client.get("/health", headers={"Host": host})
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_HOST"


def test_host_patterns():
    assert host_matches("a.b.edu", ["*.b.edu"])
    assert not host_matches("b.edu", ["*.b.edu"])
    assert host_matches("anything", ["*"])


def test_by_default_every_host_is_served_and_never_repeated(client):
    response = client.get("/semesters", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 200
    assert "evil.example" not in response.text
    assert "location" not in response.headers


def test_the_semester_list_answers_with_and_without_its_slash(client, factory):
    factory.semester()
    with_slash = client.get("/semesters/", follow_redirects=False)
    without = client.get("/semesters", follow_redirects=False)
    assert with_slash.status_code == without.status_code == 200
    assert with_slash.json() == without.json()


def test_a_trailing_slash_elsewhere_is_a_json_404_not_a_redirect(client, factory):
    course = factory.course()
    response = client.get(f"/courses/{course.id}/", follow_redirects=False)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/health", "/semesters/", "/courses/{course}", "/semesters/{semester}/courses"])
def test_head_answers_the_get_headers_without_a_body(client, factory, path):
    course = factory.course()
    url = path.format(course=course.id, semester=course.semester_id)
    get, head = client.get(url), client.head(url)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_a_wrong_method_is_json_405_with_allow(client):
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_an_unknown_path_is_json_404(client):
    response = client.get("/no/such/thing")
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")


def test_a_refused_cors_preflight_is_json(strict_host_client):
    response = strict_host_client.options(
        "/semesters/", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "CORS_PREFLIGHT_REFUSED"


def test_an_allowed_cors_preflight_still_passes(strict_host_client):
    response = strict_host_client.options(
        "/semesters/", headers={"Origin": "https://app.example.edu", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.edu"


def test_allowed_hosts_setting_splits_and_lowercases():
    assert Settings(allowed_hosts=" A.edu ,b.edu,").allowed_host_names == ["a.edu", "b.edu"]
