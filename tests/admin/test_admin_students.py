"""A registrar's students: accounts, limits, holds, transcripts, appointments, registering
and dropping on a student's behalf, and a student's events."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.registrations.statements import LOCK_STUDENT
from tests.support.api import login, register
from tests.support.factory import unique

UNKNOWN = "/admin/students/NOBODY-{}".format


def username(client, headers):
    return client.get("/admin/whoami", headers=headers).json()["username"]


# ---- POST /admin/students, PATCH /admin/students/{number} --------------------------------------


def test_create_student_who_can_then_log_in(client, registrar):
    number = unique("N")[:32]
    body = {"student_number": number, "name": "New Student", "password": "a-good-password", "max_credits": 12}
    response = client.post("/admin/students", json=body, headers=registrar)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["student_number"], created["max_credits"], created["holds"]) == (number, 12, [])
    assert login(client, number, "a-good-password").status_code == 200


def test_create_student_with_a_number_taken_is_409_conflict(client, registrar, factory):
    taken = factory.student().student_number
    body = {"student_number": taken, "name": "Twin", "password": "a-good-password"}
    response = client.post("/admin/students", json=body, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")


def test_create_student_with_a_short_password_is_422(client, registrar):
    body = {"student_number": unique("N")[:32], "name": "X", "password": "short"}
    assert client.post("/admin/students", json=body, headers=registrar).status_code == 422


def test_patch_student_changes_the_name_and_the_limit_and_null_gives_the_default_back(client, registrar, factory):
    student = factory.student()
    path = f"/admin/students/{student.student_number}"
    response = client.patch(path, json={"name": "Renamed", "max_credits": 6}, headers=registrar)
    assert (response.json()["name"], response.json()["max_credits"]) == ("Renamed", 6)
    assert client.get("/auth/me", headers=factory.auth(student)).json()["max_credits"] == 6
    response = client.patch(path, json={"max_credits": None}, headers=registrar)
    assert (response.json()["name"], response.json()["max_credits"]) == ("Renamed", None)
    assert client.get("/auth/me", headers=factory.auth(student)).json()["max_credits"] == 18


def test_a_lower_limit_refuses_the_next_registration(client, registrar, factory):
    student = factory.student()
    semester = factory.semester()
    first, second = factory.course(semester, credits=3), factory.course(semester, credits=3)
    assert register(client, factory, student, first).status_code == 200
    client.patch(f"/admin/students/{student.student_number}", json={"max_credits": 5}, headers=registrar)
    assert register(client, factory, student, second).json()["code"] == "CREDIT_LIMIT_EXCEEDED"


# ---- holds ---------------------------------------------------------------------------------------


def test_a_hold_blocks_the_next_register_and_lifting_it_lets_the_student_in(client, registrar, factory, engine):
    student = factory.student()
    course = factory.course()
    path = f"/admin/students/{student.student_number}/holds"
    placed = client.post(path, json={"reason": "Unpaid fees"}, headers=registrar)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["reason"], hold["placed_by"], hold["lifted_at"]) == (
        "Unpaid fees",
        f"staff:{username(client, registrar)}",
        None,
    )
    refused = register(client, factory, student, course)
    assert (refused.status_code, refused.json()["code"], refused.json()["reasons"]) == (
        403,
        "REGISTRATION_HOLD",
        ["Unpaid fees"],
    )
    lifted = client.delete(f"{path}/{hold['id']}", headers=registrar)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"] == hold["placed_by"]
    assert register(client, factory, student, course).json()["status"] == "ENROLLED"
    events = client.get(f"/admin/students/{student.student_number}/events", headers=registrar).json()
    assert [event["event_type"] for event in events] == ["ENROLLED", "HOLD_LIFTED", "HOLD_PLACED"]
    assert events[2]["details"] == {"hold_id": hold["id"], "reason": "Unpaid fees"}
    assert events[2]["request_id"] == placed.headers["X-Request-ID"]
    with engine.connect() as connection:
        lifted_at = connection.scalar(text("SELECT lifted_at FROM student_holds WHERE id = :h"), {"h": hold["id"]})
    assert lifted_at is not None


def test_lifting_a_hold_twice_or_an_unknown_one_is_404(client, registrar, factory):
    student, other = factory.student(), factory.student()
    path = f"/admin/students/{student.student_number}/holds"
    hold = client.post(path, json={"reason": "Library"}, headers=registrar).json()
    assert client.delete(f"{path}/{hold['id']}", headers=registrar).status_code == 200
    again = client.delete(f"{path}/{hold['id']}", headers=registrar)
    assert (again.status_code, again.json()["code"]) == (404, "HOLD_NOT_FOUND")
    unknown = client.delete(f"{path}/9223372036854775807", headers=registrar)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "HOLD_NOT_FOUND")
    # Another student's hold is not this student's.
    others = client.post(f"/admin/students/{other.student_number}/holds", json={"reason": "X"}, headers=registrar)
    wrong = client.delete(f"{path}/{others.json()['id']}", headers=registrar)
    assert (wrong.status_code, wrong.json()["code"]) == (404, "HOLD_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/holds", {"reason": "Waits"}),
        ("PATCH", "", {"max_credits": 3}),
        ("POST", "/completed-courses", {"course_code": "CS100"}),
    ],
)
def test_a_change_to_what_the_rules_read_waits_for_the_students_lock(
    client, registrar, factory, engine, method, suffix, body
):
    """A registration in flight holds the student's lock: the registrar's change waits for
    it, so that registration sees the change entirely before or after, never half."""
    student = factory.student()
    with ThreadPoolExecutor(1) as pool, engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(LOCK_STUDENT, {"student": student.id})
        change = pool.submit(
            client.request, method, f"/admin/students/{student.student_number}{suffix}", json=body, headers=registrar
        )
        time.sleep(0.3)
        assert not change.done()
        transaction.commit()
        assert change.result(timeout=10).status_code in {200, 201}


# ---- completed courses and appointments ----------------------------------------------------------


def test_a_completed_course_meets_a_prerequisite_and_adding_it_twice_is_harmless(client, registrar, factory):
    student = factory.student()
    course = factory.course(prerequisites=["CS100"])
    assert register(client, factory, student, course).json()["code"] == "PREREQUISITE_MISSING"
    path = f"/admin/students/{student.student_number}/completed-courses"
    for _ in range(2):
        response = client.post(path, json={"course_code": "CS100"}, headers=registrar)
        assert (response.status_code, response.json()["completed_courses"]) == (200, ["CS100"])
    assert register(client, factory, student, course).json()["status"] == "ENROLLED"


def test_an_appointment_in_the_future_gives_appointment_not_started(client, registrar, factory):
    student = factory.student()
    course = factory.course()
    opens_at = datetime.now(UTC) + timedelta(hours=2)
    path = f"/admin/students/{student.student_number}/appointments/{course.semester_id}"
    response = client.put(path, json={"registration_opens_at": opens_at.isoformat()}, headers=registrar)
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["registration_opens_at"]) == opens_at
    refused = register(client, factory, student, course)
    assert (refused.json()["code"], datetime.fromisoformat(refused.json()["opens_at"])) == (
        "APPOINTMENT_NOT_STARTED",
        opens_at,
    )
    cleared = client.put(path, json={"registration_opens_at": None}, headers=registrar)
    assert cleared.json()["registration_opens_at"] is None
    assert register(client, factory, student, course).json()["status"] == "ENROLLED"


def test_an_appointment_for_an_unknown_semester_is_404(client, registrar, factory):
    student = factory.student()
    path = f"/admin/students/{student.student_number}/appointments/2147483647"
    response = client.put(path, json={"registration_opens_at": None}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "SEMESTER_NOT_FOUND")


# ---- on a student's behalf -----------------------------------------------------------------------


def test_register_on_behalf_records_the_registrar_as_the_actor(client, registrar, factory):
    student = factory.student()
    course = factory.course(capacity=1)
    path = f"/admin/students/{student.student_number}/courses/{course.id}"
    response = client.post(f"{path}/register", headers=registrar)
    assert response.json() == {"course_id": course.id, "status": "ENROLLED", "reserve_position": None}
    history = client.get(f"/semesters/{course.semester_id}/my-history", headers=factory.auth(student)).json()
    assert [(event["event_type"], event["actor"]) for event in history] == [
        ("ENROLLED", f"staff:{username(client, registrar)}")
    ]
    dropped = client.post(f"{path}/drop", headers=registrar)
    assert dropped.json()["dropped_status"] == "ENROLLED"
    again = client.post(f"{path}/drop", headers=registrar)
    assert (again.status_code, again.json()["code"]) == (404, "NOT_REGISTERED")


def test_register_on_behalf_obeys_the_rules(client, registrar, factory):
    student = factory.student()
    semester = factory.semester()
    big = factory.course(semester, credits=12)
    more = factory.course(semester, credits=12)
    path = f"/admin/students/{student.student_number}/courses/{big.id}/register"
    assert client.post(path, headers=registrar).status_code == 200
    refused = client.post(f"/admin/students/{student.student_number}/courses/{more.id}/register", headers=registrar)
    assert (refused.status_code, refused.json()["code"]) == (409, "CREDIT_LIMIT_EXCEEDED")
    full = factory.course(semester, capacity=0, reserve_limit=0)
    refused = client.post(f"/admin/students/{student.student_number}/courses/{full.id}/register", headers=registrar)
    assert refused.json()["code"] == "COURSE_FULL"


def test_on_behalf_for_an_unknown_course_is_404(client, registrar, factory):
    student = factory.student()
    response = client.post(f"/admin/students/{student.student_number}/courses/2147483647/register", headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "COURSE_NOT_FOUND")


# ---- events and unknown students -----------------------------------------------------------------


def test_student_events_are_newest_first_across_semesters_and_paginated(client, registrar, factory):
    student = factory.student()
    first, second = factory.course(), factory.course()
    register(client, factory, student, first)
    register(client, factory, student, second)
    path = f"/admin/students/{student.student_number}/events"
    response = client.get(f"{path}?limit=1", headers=registrar)
    assert response.headers["X-Total-Count"] == "2"
    assert [event["course_id"] for event in response.json()] == [second.id]
    assert [event["course_id"] for event in client.get(f"{path}?offset=1", headers=registrar).json()] == [first.id]
    nothing = client.get(f"/admin/students/{factory.student().student_number}/events", headers=registrar)
    assert (nothing.json(), nothing.headers["X-Total-Count"]) == ([], "0")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"name": "X"}),
        ("POST", "/holds", {"reason": "X"}),
        ("DELETE", "/holds/1", None),
        ("POST", "/completed-courses", {"course_code": "CS100"}),
        ("PUT", "/appointments/1", {"registration_opens_at": None}),
        ("POST", "/courses/1/register", None),
        ("POST", "/courses/1/drop", None),
        ("GET", "/events", None),
    ],
)
def test_an_unknown_student_number_is_404_student_not_found(client, registrar, method, suffix, body):
    response = client.request(method, UNKNOWN(unique("x")) + suffix, json=body, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "STUDENT_NOT_FOUND")
