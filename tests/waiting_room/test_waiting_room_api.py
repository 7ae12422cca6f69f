"""The waiting room through the API: places, admission, the registrar's switch."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from app.core.security import create_access_token
from app.main import create_app
from app.waiting_room.tokens import create_admission_token
from tests.support.environment import PROJECT_ROOT
from tests.support.waiting_room import (
    ADMISSION_HEADER,
    my_place,
    set_room,
    take_place,
    ticket_of,
    wait_until_admitted,
    with_admission,
)

# Slow enough that nobody is admitted while a test looks, unless it waits.
CRAWL = 0.01


@pytest.fixture
def semester(factory):
    return factory.semester()


@pytest.fixture
def course(factory, semester):
    return factory.course(semester, capacity=5)


def registrations(raw_engine, course) -> tuple[int, int, int]:
    """(enrolled_count, registration rows, events) of a course, from the database."""
    with raw_engine.connect() as connection:
        return (
            connection.scalar(text("SELECT enrolled_count FROM courses WHERE id = :c"), {"c": course.id}),
            connection.scalar(text("SELECT count(*) FROM course_registrations WHERE course_id = :c"), {"c": course.id}),
            connection.scalar(text("SELECT count(*) FROM registration_events WHERE course_id = :c"), {"c": course.id}),
        )


# ---- places ---------------------------------------------------------------------------------------


def test_a_place_is_issued_once_and_the_same_on_every_later_call(client, factory, registrar, semester):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    first = take_place(client, factory, student, semester)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"semester_id", "position", "admitted", "estimated_admission_at", "admission_token"}
    assert (body["semester_id"], body["admitted"]) == (semester.id, False)
    assert body["position"] >= 1
    assert 1 <= int(first.headers["Retry-After"]) <= 30
    again = take_place(client, factory, student, semester).json()
    asked = my_place(client, factory, student, semester).json()
    assert (
        ticket_of(again["admission_token"]) == ticket_of(asked["admission_token"]) == ticket_of(body["admission_token"])
    )
    assert again["position"] == asked["position"] == body["position"]


def test_positions_follow_the_order_of_arrival(client, factory, registrar, semester):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    students = factory.students(5)
    places = [take_place(client, factory, student, semester).json() for student in students]
    positions = [place["position"] for place in places]
    assert positions == sorted(positions) and len(set(positions)) == 5
    estimates = [place["estimated_admission_at"] for place in places]
    assert estimates == sorted(estimates)
    # Asking again in reverse order changes nothing.
    assert [take_place(client, factory, s, semester).json()["position"] for s in reversed(students)] == positions[::-1]


def test_without_a_place_my_place_is_404(client, factory, semester):
    response = my_place(client, factory, factory.student(), semester)
    assert (response.status_code, response.json()["code"]) == (404, "NO_QUEUE_PLACE")


def test_a_place_in_an_unknown_semester_is_404_and_in_a_closed_one_409(client, factory):
    student = factory.student()
    unknown = take_place(client, factory, student, 2_000_000_000)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "SEMESTER_NOT_FOUND")
    closed = factory.semester(opens=timedelta(days=1), closes=timedelta(days=2))
    response = take_place(client, factory, student, closed)
    assert (response.status_code, response.json()["code"]) == (409, "REGISTRATION_CLOSED")


def test_with_the_room_off_a_place_is_admitted_at_once_and_no_token_is_needed(client, factory, semester, course):
    student = factory.student()
    response = take_place(client, factory, student, semester)
    assert response.status_code == 200
    assert (response.json()["admitted"], response.json()["position"]) == (True, 0)
    assert "Retry-After" not in response.headers
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(student)).status_code == 200


# ---- admission ------------------------------------------------------------------------------------


def test_an_unadmitted_register_is_409_with_the_estimate_and_writes_nothing(
    client, factory, registrar, semester, course, raw_engine
):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    place = take_place(client, factory, student, semester).json()
    response = client.post(
        f"/courses/{course.id}/register", headers=with_admission(factory, student, place["admission_token"])
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "NOT_YET_ADMITTED"
    assert body["position"] == place["position"]
    assert datetime.fromisoformat(body["estimated_admission_at"]) > datetime.now(UTC)
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert registrations(raw_engine, course) == (0, 0, 0)


def test_without_a_token_a_write_is_409_with_no_position(client, factory, registrar, semester, course, raw_engine):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    for action in ("register", "drop"):
        response = client.post(f"/courses/{course.id}/{action}", headers=factory.auth(student))
        assert (response.status_code, response.json()["code"]) == (409, "NOT_YET_ADMITTED")
        assert response.json()["position"] is None
        assert response.headers["Retry-After"] == "1"
    assert registrations(raw_engine, course) == (0, 0, 0)


def test_an_admitted_place_registers_drops_and_swaps(client, factory, registrar, semester, course):
    other = factory.course(semester)
    set_room(client, registrar, semester.id, enabled=True, rate=1000)
    student = factory.student()
    take_place(client, factory, student, semester)
    place = wait_until_admitted(client, factory, student, semester)
    assert place["position"] == 0
    headers = with_admission(factory, student, place["admission_token"])
    assert client.post(f"/courses/{course.id}/register", headers=headers).json()["status"] == "ENROLLED"
    swapped = client.post(f"/courses/{other.id}/swap", json={"drop_course_id": course.id}, headers=headers)
    assert swapped.status_code == 200
    assert client.post(f"/courses/{other.id}/drop", headers=headers).status_code == 200


def test_the_frontier_admits_places_in_ticket_order_at_the_fixed_pace(client, factory, registrar, semester):
    students = factory.students(10)
    set_room(client, registrar, semester.id, enabled=True, rate=5)
    started = time.monotonic()
    tickets = {s.id: ticket_of(take_place(client, factory, s, semester).json()["admission_token"]) for s in students}
    by_ticket = sorted(students, key=lambda s: tickets[s.id])
    admitted: set[uuid.UUID] = set()
    while len(admitted) < len(students):
        assert time.monotonic() - started < 30, "the frontier stopped"
        # Latest ticket first: once one is admitted, every earlier one must be (the frontier only moves on).
        seen_admitted = False
        for student in reversed(by_ticket):
            if my_place(client, factory, student, semester).json()["admitted"]:
                seen_admitted = True
                admitted.add(student.id)
            else:
                assert not seen_admitted, "a later place was admitted before an earlier one"
        time.sleep(0.1)
    # 10 places at 5 a second: about 2 s (no tight bound: the frontier moves in ticks).
    assert time.monotonic() - started > 1.0


def test_the_pace_the_registrar_sets_is_what_the_room_reports(client, factory, registrar, semester):
    response = set_room(client, registrar, semester.id, enabled=True, rate=50)
    assert response.status_code == 200
    body = response.json()
    assert (body["enabled"], body["active"], body["fixed_rate_per_s"], body["waiting"]) == (True, True, 50, 0)
    student = factory.student()
    take_place(client, factory, student, semester)
    wait_until_admitted(client, factory, student, semester)
    room = client.get(f"/admin/semesters/{semester.id}/waiting-room", headers=registrar).json()
    assert (room["rate_per_s"], room["places"], room["waiting"]) == (50, 1, 0)
    assert room["admitted_through"] >= ticket_of(my_place(client, factory, student, semester).json()["admission_token"])


def test_switching_the_room_starts_the_adaptive_pace_again_from_its_initial_rate(
    client, registrar, semester, raw_engine
):
    set_room(client, registrar, semester.id, enabled=True)
    with raw_engine.begin() as connection:  # a pace learned during an earlier rush
        connection.execute(text("UPDATE waiting_rooms SET rate_per_s = 123 WHERE semester_id = :s"), {"s": semester.id})
    assert set_room(client, registrar, semester.id, enabled=True).json()["rate_per_s"] == 123  # unchanged: kept
    assert set_room(client, registrar, semester.id, enabled=False).json()["rate_per_s"] == 0
    assert set_room(client, registrar, semester.id, enabled=True).json()["rate_per_s"] == 0


def forged_admission_token(student, semester) -> str:
    """An admission token for the first place, well formed but signed with another key."""
    return create_admission_token(
        student_id=student.id,
        semester_id=semester.id,
        ticket=1,
        secret_key="not-our-secret-but-long-enough-to-look-real",
        now=datetime.now(UTC),
        lifetime=timedelta(minutes=5),
    )


def test_with_its_admission_token_the_estimate_is_answered_without_a_query(
    client, factory, registrar, semester, statements_by_engine
):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    ahead, student = factory.students(2)
    take_place(client, factory, ahead, semester)
    place = take_place(client, factory, student, semester).json()
    client.get(f"/semesters/{semester.id}/queue/me", headers=factory.auth(student))  # the room, read for a tick
    statements_by_engine["read"].clear()
    response = client.get(
        f"/semesters/{semester.id}/queue/me", headers=with_admission(factory, student, place["admission_token"])
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["position"], body["admitted"]) == (place["position"], False)
    assert ticket_of(body["admission_token"]) == ticket_of(place["admission_token"])
    assert [statement for statement, _ in statements_by_engine["read"] if "student_terms" in statement] == []


@pytest.mark.parametrize("whose", ["another student's", "another semester's", "forged"])
def test_the_estimate_from_a_token_that_is_not_my_place_is_refused(client, factory, registrar, semester, whose):
    other_semester = factory.semester()
    for room in (semester, other_semester):
        set_room(client, registrar, room.id, enabled=True, rate=CRAWL)
    student, other = factory.students(2)
    if whose == "another student's":
        token = take_place(client, factory, other, semester).json()["admission_token"]
    elif whose == "another semester's":
        token = take_place(client, factory, student, other_semester).json()["admission_token"]
    else:
        token = forged_admission_token(student, semester)
    response = client.get(f"/semesters/{semester.id}/queue/me", headers=with_admission(factory, student, token))
    assert (response.status_code, response.json()["code"]) == (403, "INVALID_ADMISSION_TOKEN")


# ---- nobody jumps the queue -------------------------------------------------------------------------


def refused(client, factory, student, course, token: str) -> tuple[int, str]:
    response = client.post(f"/courses/{course.id}/register", headers=with_admission(factory, student, token))
    return response.status_code, response.json()["code"]


@pytest.fixture
def room_on(client, factory, registrar, semester):
    set_room(client, registrar, semester.id, enabled=True, rate=1000)


def test_a_forged_token_is_refused(client, factory, settings, semester, course, room_on):
    student = factory.student()
    forged = forged_admission_token(student, semester)
    assert refused(client, factory, student, course, forged) == (403, "INVALID_ADMISSION_TOKEN")


def test_another_students_admitted_token_is_refused(client, factory, semester, course, room_on):
    owner, thief = factory.students(2)
    take_place(client, factory, owner, semester)
    token = wait_until_admitted(client, factory, owner, semester)["admission_token"]
    assert refused(client, factory, thief, course, token) == (403, "INVALID_ADMISSION_TOKEN")
    # The owner's own token works.
    response = client.post(f"/courses/{course.id}/register", headers=with_admission(factory, owner, token))
    assert response.status_code == 200


def test_a_token_of_another_semester_is_refused(client, factory, registrar, semester, course, room_on):
    other_semester = factory.semester()
    set_room(client, registrar, other_semester.id, enabled=True, rate=1000)
    student = factory.student()
    take_place(client, factory, student, other_semester)
    token = wait_until_admitted(client, factory, student, other_semester)["admission_token"]
    assert refused(client, factory, student, course, token) == (403, "INVALID_ADMISSION_TOKEN")


def test_an_access_token_is_no_admission_token(client, factory, settings, semester, course, room_on):
    student = factory.student()
    access = create_access_token(student_id=student.id, student_number=student.student_number, settings=settings)
    assert refused(client, factory, student, course, access) == (403, "INVALID_ADMISSION_TOKEN")


def test_an_admission_token_is_no_access_token(client, factory, semester, course, room_on):
    student = factory.student()
    token = take_place(client, factory, student, semester).json()["admission_token"]
    response = client.post(f"/courses/{course.id}/register", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")


def test_a_ticket_past_the_frontier_is_not_admitted_even_signed_with_our_key(
    client, factory, registrar, settings, semester, course
):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    ticket = ticket_of(take_place(client, factory, student, semester).json()["admission_token"])
    # A valid token of this student and semester, for a later place than theirs: still behind the frontier.
    later = create_admission_token(
        student_id=student.id,
        semester_id=semester.id,
        ticket=ticket + 1000,
        secret_key=settings.secret_key,
        now=datetime.now(UTC),
        lifetime=timedelta(minutes=5),
    )
    status, code = refused(client, factory, student, course, later)
    assert (status, code) == (409, "NOT_YET_ADMITTED")


def test_a_registrar_registers_on_a_students_behalf_without_a_place(client, factory, registrar, semester, course):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    response = client.post(f"/admin/students/{student.student_number}/courses/{course.id}/register", headers=registrar)
    assert response.status_code == 200


# ---- the registrar's switch and the default rule -------------------------------------------------------


def test_switching_the_room_off_lets_everyone_through(client, factory, registrar, semester, course):
    set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
    student = factory.student()
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(student)).status_code == 409
    body = set_room(client, registrar, semester.id, enabled=False).json()
    assert (body["enabled"], body["active"], body["fixed_rate_per_s"]) == (False, False, None)
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(student)).status_code == 200


def test_the_switch_for_an_unknown_semester_is_404_and_a_bad_pace_422(client, registrar):
    response = set_room(client, registrar, 2_000_000_000, enabled=True)
    assert (response.status_code, response.json()["code"]) == (404, "SEMESTER_NOT_FOUND")
    read = client.get("/admin/semesters/2000000000/waiting-room", headers=registrar)
    assert (read.status_code, read.json()["code"]) == (404, "SEMESTER_NOT_FOUND")
    for rate in (0, -1, 0.001, "5", True):
        assert set_room(client, registrar, 1, enabled=True, rate=rate).status_code == 422, rate
    for enabled in (0, "true"):
        assert set_room(client, registrar, 1, enabled=enabled).status_code == 422, enabled


@pytest.fixture
def default_room_client(settings):
    """The app with a room on by default for the first 5 minutes of every window."""
    with TestClient(create_app(settings.model_copy(update={"waiting_room_default_minutes": 5}))) as client:
        yield client


def test_the_room_is_on_by_default_in_the_first_minutes_of_the_window(default_room_client, factory, registrar):
    client = default_room_client
    just_opened = factory.semester(opens=timedelta(minutes=-1))
    opened_long_ago = factory.semester(opens=timedelta(minutes=-10))
    student = factory.student()
    for semester, expected in ((just_opened, 409), (opened_long_ago, 200)):
        course = factory.course(semester)
        assert client.post(f"/courses/{course.id}/register", headers=factory.auth(student)).status_code == expected
    room = client.get(f"/admin/semesters/{just_opened.id}/waiting-room", headers=registrar).json()
    assert (room["enabled"], room["active"]) == (None, True)
    # The registrar's switch wins over the default.
    assert set_room(client, registrar, just_opened.id, enabled=False).json()["active"] is False


def test_switching_back_to_the_default_follows_the_default_rule(client, factory, registrar, semester):
    set_room(client, registrar, semester.id, enabled=True)
    body = set_room(client, registrar, semester.id, enabled=None).json()
    assert (body["enabled"], body["active"]) == (None, False)  # the test settings: no default minutes


def test_the_admission_token_header_is_in_the_openapi_document(app):
    operation = app.openapi()["paths"]["/courses/{course_id}/register"]["post"]
    assert ADMISSION_HEADER in [parameter["name"] for parameter in operation["parameters"]]
    assert "Retry-After" in operation["responses"]["409"]["headers"]


def test_a_student_already_registered_in_the_semester_gets_a_place_in_their_existing_row(
    client, factory, semester, course, raw_engine
):
    student = factory.student()
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(student)).status_code == 200
    place = take_place(client, factory, student, semester).json()
    with raw_engine.connect() as connection:
        row = connection.execute(
            text("SELECT credits, queue_ticket FROM student_terms WHERE student_id = :st AND semester_id = :s"),
            {"st": student.id, "s": semester.id},
        ).one()
    assert (row.credits, row.queue_ticket) == (course.credits, ticket_of(place["admission_token"]))


def test_a_refusal_by_the_room_costs_no_query_once_the_worker_knows_the_room(
    settings, factory, registrar, semester, course
):
    app = create_app(settings.model_copy(update={"waiting_room_tick_seconds": 5}))  # the room kept 5 s
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with TestClient(app) as client:
        set_room(client, registrar, semester.id, enabled=True, rate=CRAWL)
        headers = factory.auth(factory.student())
        assert client.post(f"/courses/{course.id}/register", headers=headers).status_code == 409  # learns the room
        for engine in (app.state.engine, app.state.read_engine):
            event.listen(engine, "before_cursor_execute", record)
        response = client.post(f"/courses/{course.id}/register", headers=headers)
    assert (response.status_code, response.json()["code"]) == (409, "NOT_YET_ADMITTED")
    assert statements == []  # no statement, and so no connection and no thread


def test_the_readmes_five_line_client_gets_through_the_room_and_registers(
    client, factory, registrar, semester, course, raw_engine
):
    readme = (PROJECT_ROOT / "README.md").read_text()
    flow = readme[readme.index("A client, in five lines") :].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(flow.strip().splitlines()) == 5
    set_room(client, registrar, semester.id, enabled=True, rate=20)
    student = factory.student()
    names = {"client": client, "auth": factory.auth(student), "sid": semester.id, "cid": course.id, "time": time}
    exec(flow, names | {"ADMISSION": ADMISSION_HEADER})
    assert registrations(raw_engine, course)[:2] == (1, 1)
