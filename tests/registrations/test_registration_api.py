"""Register, drop and my-courses through HTTP: every rule and every error code."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.support.api import course_counts, drop, register


def test_register_enrolls_while_seats_are_free(client, factory):
    course = factory.course(capacity=2)
    response = register(client, factory, factory.student(), course)
    assert response.status_code == 200
    assert response.json() == {"course_id": course.id, "status": "ENROLLED", "reserve_position": None}
    assert course_counts(client, course) == (1, 0)


def test_register_joins_the_reserve_list_at_the_tail_when_full(client, factory):
    course = factory.course(capacity=1, reserve_limit=3)
    first, second, third = factory.students(3)
    assert register(client, factory, first, course).json()["status"] == "ENROLLED"
    assert register(client, factory, second, course).json() == {
        "course_id": course.id,
        "status": "RESERVED",
        "reserve_position": 1,
    }
    assert register(client, factory, third, course).json()["reserve_position"] == 2
    assert course_counts(client, course) == (1, 2)


def test_register_when_seats_and_reserve_list_are_full_is_409_course_full(client, factory):
    course = factory.course(capacity=1, reserve_limit=1)
    first, second, third = factory.students(3)
    register(client, factory, first, course)
    register(client, factory, second, course)
    response = register(client, factory, third, course)
    assert response.status_code == 409
    assert response.json()["code"] == "COURSE_FULL"
    assert course_counts(client, course) == (1, 1)


def test_course_with_no_reserve_list_is_full_at_capacity(client, factory):
    course = factory.course(capacity=1, reserve_limit=0)
    first, second = factory.students(2)
    register(client, factory, first, course)
    assert register(client, factory, second, course).json()["code"] == "COURSE_FULL"


@pytest.mark.parametrize(("capacity", "reserve_limit"), [(1, 1), (0, 2)])
def test_registering_again_in_either_status_is_409_already_registered(client, factory, capacity, reserve_limit):
    # (1, 1): one ENROLLED and one RESERVED; (0, 2): both RESERVED.
    course = factory.course(capacity=capacity, reserve_limit=reserve_limit)
    first, second = factory.students(2)
    register(client, factory, first, course)
    register(client, factory, second, course)
    for student in (first, second):
        response = register(client, factory, student, course)
        assert response.status_code == 409
        assert response.json()["code"] == "ALREADY_REGISTERED"
    assert course_counts(client, course) == (capacity, 2 - capacity)


def test_already_registered_wins_over_course_full(client, factory):
    course = factory.course(capacity=1, reserve_limit=0)
    student = factory.student()
    register(client, factory, student, course)
    assert register(client, factory, student, course).json()["code"] == "ALREADY_REGISTERED"


@pytest.mark.parametrize(
    ("opens", "closes"), [(timedelta(days=1), timedelta(days=2)), (timedelta(days=-2), timedelta(days=-1))]
)
def test_register_and_drop_outside_the_window_are_409_registration_closed(client, factory, opens, closes):
    course = factory.course(factory.semester(opens=opens, closes=closes))
    student = factory.student()
    for action in (register, drop):
        response = action(client, factory, student, course)
        assert response.status_code == 409
        assert response.json()["code"] == "REGISTRATION_CLOSED"


def test_register_for_unknown_course_is_404(client, factory):
    response = client.post("/courses/999999/register", headers=factory.auth(factory.student()))
    assert response.status_code == 404
    assert response.json()["code"] == "COURSE_NOT_FOUND"


def test_drop_unknown_course_is_404(client, factory):
    response = client.post("/courses/999999/drop", headers=factory.auth(factory.student()))
    assert response.status_code == 404
    assert response.json()["code"] == "COURSE_NOT_FOUND"


def test_register_and_drop_need_a_token(client, factory):
    course = factory.course()
    for action in ("register", "drop"):
        response = client.post(f"/courses/{course.id}/{action}")
        assert response.status_code == 401
        assert response.json()["code"] == "NOT_AUTHENTICATED"
    assert client.get(f"/semesters/{course.semester_id}/my-courses").status_code == 401


def _invalid_tokens(settings, student):
    now = datetime.now(UTC)
    claims = {"sub": str(student.id), "iat": now, "exp": now + timedelta(hours=1)}
    return {
        "expired": jwt.encode(
            {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}, settings.secret_key
        ),
        "wrong_key": jwt.encode(claims, "another-key-" + "y" * 32),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("kind", ["expired", "wrong_key", "garbage"])
def test_drop_and_my_courses_with_an_invalid_token_are_401_invalid_token(client, factory, settings, kind):
    course = factory.course()
    student = factory.student()
    assert register(client, factory, student, course).status_code == 200
    headers = {"Authorization": f"Bearer {_invalid_tokens(settings, student)[kind]}"}

    for response in (
        client.post(f"/courses/{course.id}/drop", headers=headers),
        client.get(f"/semesters/{course.semester_id}/my-courses", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json()["code"] == "INVALID_TOKEN"
        assert response.headers["www-authenticate"] == "Bearer"
    # The refused drop changed nothing.
    assert my_status(client, factory, student, course) == ("ENROLLED", None)


def test_drop_without_registration_is_404_not_registered(client, factory):
    response = drop(client, factory, factory.student(), factory.course())
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_REGISTERED"


def test_drop_enrolled_without_reserve_frees_the_seat(client, factory):
    course = factory.course(capacity=1)
    student = factory.student()
    register(client, factory, student, course)
    response = drop(client, factory, student, course)
    assert response.status_code == 200
    assert response.json() == {
        "course_id": course.id,
        "dropped_status": "ENROLLED",
        "promoted_student_id": None,
        "promoted_from_position": None,
    }
    assert course_counts(client, course) == (0, 0)


def test_drop_enrolled_promotes_first_reserved_and_moves_the_rest_up(client, factory):
    course = factory.course(capacity=1, reserve_limit=5)
    enrolled, first, second, third = factory.students(4)
    for student in (enrolled, first, second, third):
        register(client, factory, student, course)

    response = drop(client, factory, enrolled, course)
    assert response.json() == {
        "course_id": course.id,
        "dropped_status": "ENROLLED",
        "promoted_student_id": str(first.id),
        "promoted_from_position": 1,
    }
    assert my_status(client, factory, first, course) == ("ENROLLED", None)
    assert my_status(client, factory, second, course) == ("RESERVED", 1)
    assert my_status(client, factory, third, course) == ("RESERVED", 2)
    assert course_counts(client, course) == (1, 2)


def test_drop_reserved_closes_the_gap_behind_it(client, factory):
    course = factory.course(capacity=1, reserve_limit=5)
    enrolled, first, second, third = factory.students(4)
    for student in (enrolled, first, second, third):
        register(client, factory, student, course)

    response = drop(client, factory, second, course)
    assert response.json() == {
        "course_id": course.id,
        "dropped_status": "RESERVED",
        "promoted_student_id": None,
        "promoted_from_position": None,
    }
    assert my_status(client, factory, enrolled, course) == ("ENROLLED", None)
    assert my_status(client, factory, first, course) == ("RESERVED", 1)
    assert my_status(client, factory, third, course) == ("RESERVED", 2)
    assert course_counts(client, course) == (1, 2)


def test_drop_then_register_again_goes_to_the_tail(client, factory):
    course = factory.course(capacity=1, reserve_limit=5)
    enrolled, first, second = factory.students(3)
    for student in (enrolled, first, second):
        register(client, factory, student, course)

    drop(client, factory, first, course)
    response = register(client, factory, first, course)
    assert response.json() == {"course_id": course.id, "status": "RESERVED", "reserve_position": 2}
    assert my_status(client, factory, second, course) == ("RESERVED", 1)


def test_dropping_twice_is_404_the_second_time(client, factory):
    course = factory.course()
    student = factory.student()
    register(client, factory, student, course)
    assert drop(client, factory, student, course).status_code == 200
    assert drop(client, factory, student, course).json()["code"] == "NOT_REGISTERED"


def my_status(client, factory, student, course):
    response = client.get(f"/semesters/{course.semester_id}/my-courses", headers=factory.auth(student))
    assert response.status_code == 200
    for item in response.json():
        if item["course_id"] == course.id:
            return item["status"], item["reserve_position"]
    return None


def test_my_courses_lists_only_my_registrations_in_that_semester(client, factory):
    semester = factory.semester()
    other_semester = factory.semester()
    big = factory.course(semester, capacity=5)
    small = factory.course(semester, capacity=1, reserve_limit=3)
    elsewhere = factory.course(other_semester)
    me, someone_else = factory.students(2)
    register(client, factory, someone_else, small)
    for course in (big, small, elsewhere):
        register(client, factory, me, course)

    response = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(me))
    assert response.status_code == 200
    items = response.json()
    assert [(i["course_id"], i["status"], i["reserve_position"]) for i in items] == [
        (big.id, "ENROLLED", None),
        (small.id, "RESERVED", 1),
    ]
    assert items[0]["course_name"] == big.course_name
    assert items[0]["professor"] == big.professor
    assert items[0]["schedule"] == big.schedule
    assert items[0]["registered_at"]


def test_my_courses_is_empty_without_registrations(client, factory):
    semester = factory.semester()
    response = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(factory.student()))
    assert response.status_code == 200
    assert response.json() == []


def test_my_courses_for_unknown_semester_is_404(client, factory):
    response = client.get("/semesters/999999/my-courses", headers=factory.auth(factory.student()))
    assert response.status_code == 404
    assert response.json()["code"] == "SEMESTER_NOT_FOUND"
