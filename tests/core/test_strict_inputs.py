"""Ids and page numbers have one spelling: plain decimal digits. Anything else is a
422, and the catalogue cache keys on the declared parameters, so no spelling and
no extra query parameter makes a second entry for one answer."""

import pytest
from fastapi.testclient import TestClient

from app.core.cache import ResponseCache
from app.main import create_app


@pytest.mark.parametrize("spelling", ["1_3", "+13", "%2013", "13%20", "013", "0", "-1", "1e3", "0x0d", "13.0", "١٣"])
def test_a_course_id_in_any_other_spelling_is_refused(client, spelling):
    response = client.get(f"/courses/{spelling}")
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("path", ["/courses/{id}/register", "/courses/{id}/drop"])
def test_writes_refuse_lax_ids_before_anything_else(client, factory, path):
    student = factory.student()
    course = factory.course()
    response = client.post(path.format(id=f"+{course.id}"), headers=factory.auth(student))
    assert response.status_code == 422


@pytest.mark.parametrize("query", ["limit=+5", "limit=05", "limit=1_0", "offset=-0", "offset= 1", "limit=5.0"])
def test_page_numbers_in_any_other_spelling_are_refused(client, factory, query):
    semester = factory.semester()
    response = client.get(f"/semesters/{semester.id}/courses?{query}")
    assert response.status_code == 422


def test_the_plain_spelling_still_works(client, factory):
    course = factory.course()
    assert client.get(f"/courses/{course.id}").json()["id"] == course.id
    assert client.get(f"/semesters/{course.semester_id}/courses?limit=5&offset=0").status_code == 200


@pytest.fixture
def caching_app(settings):
    app = create_app(settings)
    app.state.response_cache = ResponseCache(ttl_seconds=3600)
    with TestClient(app) as client:
        yield client, app.state.response_cache


def test_unknown_query_parameters_and_their_order_share_one_cache_entry(caching_app, factory):
    client, cache = caching_app
    semester = factory.semester()
    factory.course(semester)
    for query in ("limit=5", "limit=5&junk=1", "junk=2&limit=5", "limit=5&offset=0&x=", "offset=0&limit=5"):
        assert client.get(f"/semesters/{semester.id}/courses?{query}").status_code == 200
    # "offset=0" spelled out is a second key (the default is not filled in), nothing more.
    assert len(cache._entries) == 2


def test_refused_spellings_make_no_cache_entries(caching_app, factory):
    client, cache = caching_app
    course = factory.course()
    for spelling in (f"+{course.id}", f"0{course.id}", f"{course.id}%20"):
        assert client.get(f"/courses/{spelling}").status_code == 422
    assert len(cache._entries) == 0
    assert client.get(f"/courses/{course.id}").status_code == 200
    assert len(cache._entries) == 1
