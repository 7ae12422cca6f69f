"""A registrar's courses: create, edit (a capacity raise promotes), cancel, roster, events."""

import csv
import io
from datetime import datetime

import pytest
from sqlalchemy import text

from app.admin.courses import wants_csv
from app.courses.errors import CourseHasRegistrations
from app.courses.service import CourseNow, plan_course_edit
from app.registrations.invariants import check_invariants
from tests.support.api import register
from tests.support.factory import unique

MON = {"day": "MON", "start": "09:00", "end": "10:30"}
WED = {"day": "WED", "start": "09:00", "end": "10:30"}


def new_course(**overrides):
    return {
        "code": unique("C")[:20],
        "course_name": unique("Course"),
        "professor": "Prof. Admin",
        "credits": 4,
        "meetings": [MON, WED],
        "prerequisites": ["CS100"],
        "max_capacity": 2,
        "reserve_limit": 3,
        **overrides,
    }


# ---- POST /admin/semesters/{id}/courses --------------------------------------------------------


def test_create_course_derives_the_schedule_from_the_meetings(client, registrar, factory):
    semester = factory.semester()
    response = client.post(f"/admin/semesters/{semester.id}/courses", json=new_course(), headers=registrar)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["schedule"] == "Mon 09:00-10:30, Wed 09:00-10:30"
    assert (body["credits"], body["prerequisites"], body["available_seats"]) == (4, ["CS100"], 2)
    assert client.get(f"/courses/{body['id']}").json() == body


def test_create_course_without_meetings_keeps_the_schedule_given(client, registrar, factory):
    semester = factory.semester()
    course = new_course(meetings=[], schedule="By arrangement")
    response = client.post(f"/admin/semesters/{semester.id}/courses", json=course, headers=registrar)
    assert response.json()["schedule"] == "By arrangement"


@pytest.mark.parametrize("field", ["code", "course_name"])
def test_create_course_with_a_code_or_name_taken_in_the_semester_is_409(client, registrar, factory, field):
    existing = factory.course()
    course = new_course(**{field: getattr(existing, field)})
    response = client.post(f"/admin/semesters/{existing.semester_id}/courses", json=course, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")
    # The same code in another semester is fine.
    other = factory.semester()
    assert client.post(f"/admin/semesters/{other.id}/courses", json=course, headers=registrar).status_code == 201


def test_create_course_in_an_unknown_semester_is_404(client, registrar):
    response = client.post("/admin/semesters/2147483647/courses", json=new_course(), headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "SEMESTER_NOT_FOUND")


@pytest.mark.parametrize(
    "bad",
    [{"credits": 13}, {"max_capacity": -1}, {"meetings": [{"day": "MON", "start": "10:00", "end": "09:00"}]}],
)
def test_create_course_with_invalid_fields_is_422(client, registrar, factory, bad):
    semester = factory.semester()
    response = client.post(f"/admin/semesters/{semester.id}/courses", json=new_course(**bad), headers=registrar)
    assert response.status_code == 422


# ---- PATCH /admin/courses/{id} -----------------------------------------------------------------


def test_patch_course_changes_any_field_while_nobody_is_registered(client, registrar, factory):
    course = factory.course(credits=3)
    changes = {"course_name": unique("Renamed"), "professor": "Prof. New", "credits": 5, "meetings": [WED]}
    changes |= {"prerequisites": ["CS100"], "max_capacity": 7, "reserve_limit": 0}
    response = client.patch(f"/admin/courses/{course.id}", json=changes, headers=registrar)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in changes} == changes
    assert body["schedule"] == "Wed 09:00-10:30"


def test_patch_raising_capacity_promotes_the_reserve_head_first_come_first_served(client, registrar, factory, engine):
    course = factory.course(capacity=1, reserve_limit=3)
    students = factory.students(4)
    for student in students:
        assert register(client, factory, student, course).status_code == 200
    response = client.patch(f"/admin/courses/{course.id}", json={"max_capacity": 3}, headers=registrar)
    assert response.status_code == 200, response.text
    assert (response.json()["enrolled_count"], response.json()["reserved_count"]) == (3, 1)
    roster = client.get(f"/admin/courses/{course.id}/roster", headers=registrar).json()
    numbers = [student.student_number for student in students]
    assert [(entry["student_number"], entry["status"], entry["reserve_position"]) for entry in roster] == [
        (numbers[0], "ENROLLED", None),
        (numbers[1], "ENROLLED", None),
        (numbers[2], "ENROLLED", None),
        (numbers[3], "RESERVED", 1),
    ]
    events = client.get(f"/admin/courses/{course.id}/events", headers=registrar).json()
    assert [event["event_type"] for event in events[:3]] == ["CAPACITY_CHANGED", "PROMOTED", "PROMOTED"]
    assert {event["actor"] for event in events[:3]} == {f"staff:{_username(client, registrar)}"}
    with engine.connect() as connection:
        assert check_invariants(connection).ok


def _username(client, headers):
    return client.get("/admin/whoami", headers=headers).json()["username"]


def test_patch_capacity_below_enrolled_is_409_and_changes_nothing(client, registrar, factory):
    course = factory.course(capacity=2)
    for student in factory.students(2):
        register(client, factory, student, course)
    response = client.patch(
        f"/admin/courses/{course.id}", json={"max_capacity": 1, "professor": "Prof. X"}, headers=registrar
    )
    assert (response.status_code, response.json()["code"]) == (409, "CAPACITY_BELOW_ENROLLED")
    assert client.get(f"/courses/{course.id}").json()["professor"] == "Prof. Test"  # one transaction


def test_patch_reserve_limit_below_reserved_is_409(client, registrar, factory):
    course = factory.course(capacity=1, reserve_limit=2)
    for student in factory.students(3):
        register(client, factory, student, course)
    response = client.patch(f"/admin/courses/{course.id}", json={"reserve_limit": 1}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "RESERVE_BELOW_RESERVED")


@pytest.mark.parametrize(
    "change", [{"credits": 4}, {"meetings": [WED]}, {"prerequisites": ["CS100"]}], ids=["credits", "meetings", "prereq"]
)
def test_patch_rules_of_a_course_with_registrations_is_409_course_has_registrations(client, registrar, factory, change):
    course = factory.course(credits=3, meetings=[MON])
    register(client, factory, factory.student(), course)
    response = client.patch(f"/admin/courses/{course.id}", json=change, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "COURSE_HAS_REGISTRATIONS")
    # The same values again, and the other fields, are fine.
    same = {"credits": 3, "meetings": [MON], "prerequisites": [], "professor": "Prof. Y"}
    assert client.patch(f"/admin/courses/{course.id}", json=same, headers=registrar).status_code == 200


def test_patch_course_code_taken_is_409_conflict(client, registrar, factory):
    course = factory.course()
    response = client.post(f"/admin/semesters/{course.semester_id}/courses", json=new_course(), headers=registrar)
    taken = response.json()["code"]
    response = client.patch(f"/admin/courses/{course.id}", json={"code": taken}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")


def test_patch_unknown_course_is_404(client, registrar):
    response = client.patch("/admin/courses/2147483647", json={"professor": "X"}, headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "COURSE_NOT_FOUND")


def test_plan_course_edit_refuses_only_real_rule_changes_while_registered():
    course = CourseNow(
        registered=True, credits=3, meetings=[MON], prerequisites=["A", "B"], max_capacity=5, reserve_limit=2
    )
    columns, limits = plan_course_edit(course, {"prerequisites": ["B", "A"], "max_capacity": 5, "code": "X"})
    assert (columns, limits) == ({"prerequisites": ["B", "A"], "code": "X"}, False)
    assert plan_course_edit(course, {"reserve_limit": 3})[1] is True
    with pytest.raises(CourseHasRegistrations):
        plan_course_edit(course, {"credits": 4})
    free = CourseNow(registered=False, credits=3, meetings=[MON], prerequisites=[], max_capacity=5, reserve_limit=2)
    assert plan_course_edit(free, {"meetings": []})[0] == {"meetings": [], "schedule": ""}


# ---- cancel ------------------------------------------------------------------------------------


def test_cancel_course_ends_every_registration_and_refuses_new_ones(client, registrar, factory):
    course = factory.course(capacity=1, reserve_limit=1)
    for student in factory.students(2):
        register(client, factory, student, course)
    response = client.post(f"/admin/courses/{course.id}/cancel", headers=registrar)
    assert response.json() == {"course_id": course.id, "ended_registrations": 2}
    assert client.get(f"/admin/courses/{course.id}/roster", headers=registrar).json() == []
    refused = register(client, factory, factory.student(), course)
    assert refused.json()["code"] == "COURSE_CANCELLED"
    again = client.post(f"/admin/courses/{course.id}/cancel", headers=registrar)
    assert again.json()["ended_registrations"] == 0


def test_cancel_unknown_course_is_404(client, registrar):
    response = client.post("/admin/courses/2147483647/cancel", headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "COURSE_NOT_FOUND")


# ---- roster ------------------------------------------------------------------------------------


def test_roster_as_csv_lists_the_enrolled_then_the_reserve_list(client, registrar, factory):
    course = factory.course(capacity=1, reserve_limit=2)
    students = factory.students(3)
    for student in students:
        register(client, factory, student, course)
    response = client.get(f"/admin/courses/{course.id}/roster", headers={**registrar, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(row["student_number"], row["status"], row["reserve_position"]) for row in rows] == [
        (students[0].student_number, "ENROLLED", ""),
        (students[1].student_number, "RESERVED", "1"),
        (students[2].student_number, "RESERVED", "2"),
    ]
    as_json = client.get(f"/admin/courses/{course.id}/roster", headers=registrar).json()
    assert [(entry["name"], datetime.fromisoformat(entry["registered_at"])) for entry in as_json] == [
        (row["name"], datetime.fromisoformat(row["registered_at"])) for row in rows
    ]


def test_roster_of_an_empty_course_is_empty_and_of_an_unknown_one_404(client, registrar, factory):
    course = factory.course()
    assert client.get(f"/admin/courses/{course.id}/roster", headers=registrar).json() == []
    csv_only_header = client.get(f"/admin/courses/{course.id}/roster", headers={**registrar, "Accept": "text/csv"})
    assert csv_only_header.text.strip() == "student_number,name,status,reserve_position,registered_at"
    response = client.get("/admin/courses/2147483647/roster", headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "COURSE_NOT_FOUND")


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/csv", True),
        ("text/csv, application/json;q=0.5", True),
        ("application/json, text/csv;q=0.9", False),
        ("text/csv;q=0", False),
        ("text/csv;q=bad", False),
    ],
)
def test_wants_csv_follows_the_accept_header(accept, csv_wanted):
    assert wants_csv(accept) is csv_wanted


# ---- events ------------------------------------------------------------------------------------


def test_course_events_are_newest_first_and_paginated(client, registrar, factory):
    course = factory.course(capacity=1, reserve_limit=5)
    students = factory.students(3)
    for student in students:
        register(client, factory, student, course)
    response = client.get(f"/admin/courses/{course.id}/events?limit=2", headers=registrar)
    assert response.headers["X-Total-Count"] == "3"
    body = response.json()
    assert [event["event_type"] for event in body] == ["RESERVED", "RESERVED"]
    assert body[0]["student_id"] == str(students[2].id)
    assert body[0]["actor"] == f"student:{students[2].id}"
    rest = client.get(f"/admin/courses/{course.id}/events?offset=2", headers=registrar).json()
    assert [(event["event_type"], event["student_id"]) for event in rest] == [("ENROLLED", str(students[0].id))]


def test_course_events_of_an_unknown_course_are_404(client, registrar, factory, engine):
    response = client.get("/admin/courses/2147483647/events", headers=registrar)
    assert (response.status_code, response.json()["code"]) == (404, "COURSE_NOT_FOUND")
    course = factory.course()
    empty = client.get(f"/admin/courses/{course.id}/events", headers=registrar)
    assert (empty.json(), empty.headers["X-Total-Count"]) == ([], "0")
    with engine.connect() as connection:  # nothing was written by reading
        assert (
            connection.scalar(text("SELECT count(*) FROM registration_events WHERE course_id = :c"), {"c": course.id})
            == 0
        )
