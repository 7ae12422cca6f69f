"""Reads are one statement each, on the read engine, in autocommit.

Autocommit is what makes a read one round trip: psycopg2 sends no BEGIN before
it and no COMMIT after it. A single statement still reads one consistent
snapshot, so no read may take two (save the rare count of an empty page).
"""

import pytest

from tests.support.api import register


@pytest.fixture
def my_registrations(client, factory):
    """A student enrolled in two courses of a semester and first in line for a third."""
    semester = factory.semester()
    courses = [factory.course(semester, capacity=1, reserve_limit=3) for _ in range(3)]
    me, someone_else = factory.students(2)
    register(client, factory, someone_else, courses[1])
    for course in courses:
        register(client, factory, me, course)
    return semester, courses, me


@pytest.mark.parametrize(
    "path",
    [
        "/semesters/",
        "/semesters/{semester}",
        "/semesters/{semester}/courses",
        "/courses/{course}",
        "/semesters/{semester}/my-courses",
    ],
)
def test_each_read_is_one_autocommit_statement_on_the_read_engine(
    path, client, factory, my_registrations, statements_by_engine
):
    semester, courses, me = my_registrations
    statements_by_engine["read"].clear()
    statements_by_engine["write"].clear()

    response = client.get(path.format(semester=semester.id, course=courses[0].id), headers=factory.auth(me))

    assert response.status_code == 200
    assert statements_by_engine["write"] == []
    assert len(statements_by_engine["read"]) == 1, statements_by_engine["read"]
    [(_, autocommit)] = statements_by_engine["read"]
    assert autocommit is True


def test_my_courses_page_is_read_in_one_statement(client, factory, my_registrations, statements_by_engine):
    semester, _, me = my_registrations
    statements_by_engine["read"].clear()

    response = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(me))

    assert [item["status"] for item in response.json()] == ["ENROLLED", "RESERVED", "ENROLLED"]
    assert [item["reserve_position"] for item in response.json()] == [None, 1, None]
    assert response.headers["X-Total-Count"] == "3"
    assert len(statements_by_engine["read"]) == 1


def test_a_page_past_the_end_counts_the_total_separately(client, factory, statements_by_engine):
    semester = factory.semester()
    courses = [factory.course(semester) for _ in range(3)]
    statements_by_engine["read"].clear()

    response = client.get(f"/semesters/{semester.id}/courses", params={"limit": 2, "offset": 5})

    assert response.json() == []
    assert response.headers["X-Total-Count"] == str(len(courses))
    assert len(statements_by_engine["read"]) == 2


def test_an_empty_page_also_asks_whether_the_semester_exists(client, factory, statements_by_engine):
    semester = factory.semester()
    headers = factory.auth(factory.student())
    client.get("/semesters/2147483000/my-courses", headers=headers)  # the token's one student lookup
    statements_by_engine["read"].clear()

    mine = client.get(f"/semesters/{semester.id}/my-courses", headers=headers)
    unknown = client.get("/semesters/2147483000/my-courses", headers=headers)

    assert (mine.status_code, mine.json(), mine.headers["X-Total-Count"]) == (200, [], "0")
    assert unknown.json()["code"] == "SEMESTER_NOT_FOUND"
    assert len(statements_by_engine["read"]) == 4
