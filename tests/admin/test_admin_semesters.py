"""POST and PATCH /admin/semesters."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.factory import unique

NOW = datetime.now(UTC)


def window(start_days: int, end_days: int) -> dict[str, str]:
    return {
        "registration_start": (NOW + timedelta(days=start_days)).isoformat(),
        "registration_end": (NOW + timedelta(days=end_days)).isoformat(),
    }


def test_create_semester_returns_it_and_lists_it(client, registrar):
    name = unique("Fall")
    response = client.post("/admin/semesters", json={"name": name, **window(-1, 1)}, headers=registrar)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["is_registration_open"]) == (name, True)
    assert client.get(f"/semesters/{body['id']}").json()["name"] == name


def test_create_semester_with_a_name_taken_is_409_conflict(client, registrar, factory):
    taken = factory.semester().name
    response = client.post("/admin/semesters", json={"name": taken, **window(1, 2)}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")


@pytest.mark.parametrize(("start", "end"), [(2, 1), (1, 1)])
def test_create_semester_whose_window_does_not_end_after_it_starts_is_422(client, registrar, start, end):
    response = client.post("/admin/semesters", json={"name": unique("S"), **window(start, end)}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")


def test_create_semester_without_a_time_zone_is_422(client, registrar):
    body = {"name": unique("S"), "registration_start": "2027-01-01T00:00:00", "registration_end": "2027-02-01T00:00:00"}
    assert client.post("/admin/semesters", json=body, headers=registrar).status_code == 422


def test_patch_semester_renames_and_moves_the_window(client, registrar, factory):
    semester = factory.semester()
    name = unique("Renamed")
    response = client.patch(f"/admin/semesters/{semester.id}", json={"name": name, **window(3, 4)}, headers=registrar)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["is_registration_open"]) == (name, False)


def test_patch_semester_closing_the_window_closes_registration(client, registrar, factory):
    course = factory.course()
    student = factory.student()
    end = (NOW - timedelta(minutes=1)).isoformat()
    patched = client.patch(f"/admin/semesters/{course.semester_id}", json={"registration_end": end}, headers=registrar)
    assert patched.status_code == 200, patched.text
    response = client.post(f"/courses/{course.id}/register", headers=factory.auth(student))
    assert response.json()["code"] == "REGISTRATION_CLOSED"


def test_patch_semester_end_before_the_stored_start_is_422_and_changes_nothing(client, registrar, factory):
    semester = factory.semester(opens=timedelta(days=1), closes=timedelta(days=2))
    end = NOW.isoformat()  # before the stored start
    response = client.patch(f"/admin/semesters/{semester.id}", json={"registration_end": end}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")
    assert response.json()["errors"][0]["loc"] == ["body", "registration_end"]
    assert client.get(f"/semesters/{semester.id}").json()["name"] == semester.name


def test_patch_semester_with_a_name_taken_is_409_conflict(client, registrar, factory):
    semester, other = factory.semester(), factory.semester()
    response = client.patch(f"/admin/semesters/{semester.id}", json={"name": other.name}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")


def test_patch_unknown_semester_is_404(client, registrar):
    response = client.patch("/admin/semesters/2147483647", json={"name": unique("S")}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "SEMESTER_NOT_FOUND")
