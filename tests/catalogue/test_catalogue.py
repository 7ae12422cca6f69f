from datetime import timedelta


def test_health_needs_no_database(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_checks_the_database(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_list_semesters_includes_new_semester_with_its_window_state(client, factory):
    open_semester = factory.semester()
    closed_semester = factory.semester(opens=timedelta(days=10), closes=timedelta(days=20))
    response = client.get("/semesters/")
    assert response.status_code == 200
    by_id = {semester["id"]: semester for semester in response.json()}
    assert by_id[open_semester.id]["name"] == open_semester.name
    assert by_id[open_semester.id]["is_registration_open"] is True
    assert by_id[closed_semester.id]["is_registration_open"] is False


def test_read_semester(client, factory):
    semester = factory.semester()
    body = client.get(f"/semesters/{semester.id}").json()
    assert body["id"] == semester.id
    assert body["name"] == semester.name


def test_unknown_semester_is_404(client):
    for path in ["/semesters/999999", "/semesters/999999/courses"]:
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Semester not found", "code": "SEMESTER_NOT_FOUND"}


def test_semester_courses_carry_live_seat_counts(client, factory):
    semester = factory.semester()
    small = factory.course(semester, capacity=1, reserve_limit=2)
    other = factory.course(semester, capacity=30)
    student_a, student_b = factory.students(2)
    client.post(f"/courses/{small.id}/register", headers=factory.auth(student_a))
    client.post(f"/courses/{small.id}/register", headers=factory.auth(student_b))

    response = client.get(f"/semesters/{semester.id}/courses")
    assert response.status_code == 200
    courses = response.json()
    assert [course["id"] for course in courses] == [small.id, other.id]
    assert courses[0] | {} == {
        "id": small.id,
        "semester_id": semester.id,
        "course_name": small.course_name,
        "professor": small.professor,
        "schedule": small.schedule,
        "max_capacity": 1,
        "reserve_limit": 2,
        "enrolled_count": 1,
        "reserved_count": 1,
        "available_seats": 0,
        "code": small.code,
        "credits": 3,
        "meetings": [],
        "prerequisites": [],
        "is_cancelled": False,
    }
    assert courses[1]["available_seats"] == 30


def test_course_bodies_carry_the_rules_a_student_meets(client, factory):
    meetings = [{"day": "MON", "start": "09:00", "end": "10:30"}, {"day": "WED", "start": "09:00", "end": "10:30"}]
    course = factory.course(code="CS201", credits=4, meetings=meetings, prerequisites=["CS101"])
    body = client.get(f"/courses/{course.id}").json()
    assert (body["code"], body["credits"], body["meetings"], body["prerequisites"]) == (
        "CS201",
        4,
        meetings,
        ["CS101"],
    )
    # Old clients keep reading the schedule as text, derived from the meetings.
    assert body["schedule"] == "Mon 09:00-10:30, Wed 09:00-10:30"


def test_semester_without_courses_lists_none(client, factory):
    semester = factory.semester()
    assert client.get(f"/semesters/{semester.id}/courses").json() == []


def test_read_course(client, factory):
    course = factory.course(capacity=7, reserve_limit=3)
    body = client.get(f"/courses/{course.id}").json()
    assert body["id"] == course.id
    assert body["max_capacity"] == 7
    assert body["available_seats"] == 7


def test_unknown_course_is_404(client):
    response = client.get("/courses/999999")
    assert response.status_code == 404
    assert response.json()["code"] == "COURSE_NOT_FOUND"


def test_malformed_ids_are_422_not_500(client, factory):
    headers = factory.auth(factory.student())
    for method, path in [
        ("GET", "/semesters/abc"),
        ("GET", "/semesters/0"),
        ("GET", "/semesters/-1/courses"),
        ("GET", "/semesters/99999999999999999999"),
        ("GET", "/courses/1.5"),
        ("GET", "/courses/2147483648"),
        ("POST", "/courses/abc/register"),
        ("POST", "/courses/0/drop"),
        ("GET", "/semesters/x/my-courses"),
    ]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 422, path
        assert response.json()["code"] == "VALIDATION_ERROR"


def test_unknown_route_and_wrong_method_are_json_errors(client):
    response = client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    response = client.delete("/semesters/")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
