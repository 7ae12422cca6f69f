"""The student's side of registering, through the API against real PostgreSQL:
each rule in its order, swap, my-status, my-history and the events a change writes."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.students.models import CompletedCourse, StudentHold, StudentTerm

MON_9 = {"day": "MON", "start": "09:00", "end": "10:30"}
MON_10 = {"day": "MON", "start": "10:00", "end": "11:00"}  # overlaps MON_9
MON_1030 = {"day": "MON", "start": "10:30", "end": "12:00"}  # touches MON_9's end: no overlap
TUE_9 = {"day": "TUE", "start": "09:00", "end": "10:30"}


def register(client, factory, student, course, **headers):
    return client.post(f"/courses/{course.id}/register", headers={**factory.auth(student), **headers})


def add(engine, *rows):
    with Session(engine) as session, session.begin():
        session.add_all(rows)


def refused(response, status, code):
    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    return response.json()


def test_a_time_conflict_is_refused_and_names_the_course(client, factory):
    semester = factory.semester()
    first = factory.course(semester, meetings=[MON_9])
    overlapping = factory.course(semester, meetings=[MON_10])
    touching = factory.course(semester, meetings=[MON_1030])
    student = factory.student()
    assert register(client, factory, student, first).status_code == 200
    body = refused(register(client, factory, student, overlapping), 409, "SCHEDULE_CONFLICT")
    assert body["conflicts_with"] == first.id
    assert register(client, factory, student, touching).status_code == 200


def test_a_reserve_place_holds_its_time_slot_and_credits(client, factory):
    semester = factory.semester()
    full = factory.course(semester, capacity=1, reserve_limit=5, meetings=[MON_9], credits=4)
    other = factory.course(semester, meetings=[MON_10])
    first, student = factory.students(2)
    register(client, factory, first, full)
    assert register(client, factory, student, full).json()["status"] == "RESERVED"
    refused(register(client, factory, student, other), 409, "SCHEDULE_CONFLICT")
    status = client.get(f"/semesters/{semester.id}/my-status", headers=factory.auth(student)).json()
    assert status["credits"] == 4


def test_the_credit_limit_counts_enrolled_and_reserved_credits(client, factory, engine):
    semester = factory.semester()
    courses = [factory.course(semester, credits=4) for _ in range(3)]
    student = factory.student()
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE students SET max_credits = 9 WHERE id = :id"), {"id": student.id})
    assert register(client, factory, student, courses[0]).status_code == 200
    assert register(client, factory, student, courses[1]).status_code == 200
    body = refused(register(client, factory, student, courses[2]), 409, "CREDIT_LIMIT_EXCEEDED")
    assert (body["credits"], body["course_credits"], body["max_credits"]) == (8, 4, 9)
    # A drop gives the credits back.
    client.post(f"/courses/{courses[0].id}/drop", headers=factory.auth(student))
    assert register(client, factory, student, courses[2]).status_code == 200


def test_a_missing_prerequisite_is_refused_with_the_missing_codes(client, factory, engine):
    semester = factory.semester()
    advanced = factory.course(semester, prerequisites=["CS101", "MA101"])
    student = factory.student()
    body = refused(register(client, factory, student, advanced), 409, "PREREQUISITE_MISSING")
    assert body["missing"] == ["CS101", "MA101"]
    add(engine, CompletedCourse(student_id=student.id, course_code="CS101"))
    assert refused(register(client, factory, student, advanced), 409, "PREREQUISITE_MISSING")["missing"] == ["MA101"]
    add(engine, CompletedCourse(student_id=student.id, course_code="MA101"))
    assert register(client, factory, student, advanced).status_code == 200


def test_an_active_hold_blocks_registering_never_dropping(client, factory, engine):
    semester = factory.semester()
    course, other = factory.course(semester), factory.course(semester)
    student = factory.student()
    assert register(client, factory, student, course).status_code == 200
    add(engine, StudentHold(student_id=student.id, reason="Unpaid fees"))
    body = refused(register(client, factory, student, other), 403, "REGISTRATION_HOLD")
    assert body["reasons"] == ["Unpaid fees"]
    assert client.post(f"/courses/{course.id}/drop", headers=factory.auth(student)).status_code == 200
    me = client.get("/auth/me", headers=factory.auth(student)).json()
    assert [hold["reason"] for hold in me["holds"]] == ["Unpaid fees"]
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE student_holds SET lifted_at = now() WHERE student_id = :id"), {"id": student.id})
    assert register(client, factory, student, other).status_code == 200


def test_before_the_appointment_registering_is_refused_with_its_time(client, factory, engine):
    semester = factory.semester()
    course = factory.course(semester)
    student = factory.student()
    opens_at = datetime.now(UTC) + timedelta(hours=2)
    add(engine, StudentTerm(student_id=student.id, semester_id=semester.id, registration_opens_at=opens_at))
    body = refused(register(client, factory, student, course), 409, "APPOINTMENT_NOT_STARTED")
    assert datetime.fromisoformat(body["opens_at"]) == opens_at
    status = client.get(f"/semesters/{semester.id}/my-status", headers=factory.auth(student)).json()
    assert status["can_register_now"] is False
    assert datetime.fromisoformat(status["registration_opens_at"]) == opens_at
    with Session(engine) as session, session.begin():
        session.execute(
            text("UPDATE student_terms SET registration_opens_at = now() - interval '1 minute' WHERE student_id = :id"),
            {"id": student.id},
        )
    assert register(client, factory, student, course).status_code == 200


def test_the_rules_are_checked_in_their_documented_order(client, factory, engine):
    """A student who breaks every rule at once hears about the first one, then the next."""
    semester = factory.semester()
    held = factory.course(semester, meetings=[MON_9], credits=7)
    target = factory.course(semester, meetings=[MON_10], credits=12, prerequisites=["XX999"])
    student = factory.student()
    assert register(client, factory, student, held).status_code == 200
    opens_at = datetime.now(UTC) + timedelta(hours=1)
    with Session(engine) as session, session.begin():
        session.execute(
            text("UPDATE student_terms SET registration_opens_at = :at WHERE student_id = :id"),
            {"at": opens_at, "id": student.id},
        )
        session.add(StudentHold(student_id=student.id, reason="Library fine"))
    order = ["APPOINTMENT_NOT_STARTED", "REGISTRATION_HOLD", "PREREQUISITE_MISSING", "SCHEDULE_CONFLICT"]
    fixes = [
        "UPDATE student_terms SET registration_opens_at = NULL WHERE student_id = :id",
        "UPDATE student_holds SET lifted_at = now() WHERE student_id = :id",
        "INSERT INTO student_completed_courses (student_id, course_code) VALUES (:id, 'XX999')",
        "UPDATE courses SET meetings = '[]' WHERE id = " + str(target.id),
    ]
    for code, fix in zip(order, fixes, strict=True):
        assert register(client, factory, student, target).json()["code"] == code
        with Session(engine) as session, session.begin():
            session.execute(text(fix), {"id": student.id})
    assert register(client, factory, student, target).json()["code"] == "CREDIT_LIMIT_EXCEEDED"  # 7 + 12 > 18


def test_a_cancelled_course_refuses_registrations(client, factory, engine):
    course = factory.course()
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE courses SET cancelled_at = now() WHERE id = :id"), {"id": course.id})
    refused(register(client, factory, factory.student(), course), 409, "COURSE_CANCELLED")
    assert client.get(f"/courses/{course.id}").json()["is_cancelled"] is True


# ---- swap -----------------------------------------------------------------------------------------


def swap(client, factory, student, new, old, **headers):
    return client.post(
        f"/courses/{new.id}/swap", json={"drop_course_id": old.id}, headers={**factory.auth(student), **headers}
    )


def test_a_swap_trades_the_old_course_for_a_seat_and_promotes_its_reserve_head(client, factory):
    semester = factory.semester()
    old = factory.course(semester, capacity=1, reserve_limit=3, meetings=[MON_9])
    new = factory.course(semester, meetings=[MON_10])  # overlaps the old one: judged without it
    student, waiting = factory.students(2)
    register(client, factory, student, old)
    register(client, factory, waiting, old)
    response = swap(client, factory, student, new, old)
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "course_id": new.id,
        "status": "ENROLLED",
        "dropped_course_id": old.id,
        "promoted_student_id": str(waiting.id),
        "promoted_from_position": 1,
    }
    mine = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(student)).json()
    assert [c["course_id"] for c in mine] == [new.id]


def test_a_swap_that_would_only_reserve_changes_nothing(client, factory):
    semester = factory.semester()
    old = factory.course(semester)
    new = factory.course(semester, capacity=1, reserve_limit=5)
    student, holder = factory.students(2)
    register(client, factory, holder, new)
    register(client, factory, student, old)
    refused(swap(client, factory, student, new, old), 409, "SWAP_NEEDS_SEAT")
    mine = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(student)).json()
    assert [c["course_id"] for c in mine] == [old.id]
    assert client.get(f"/courses/{new.id}").json()["reserved_count"] == 0


def test_a_swap_refused_by_a_rule_keeps_the_old_course(client, factory):
    semester = factory.semester()
    old = factory.course(semester)
    kept = factory.course(semester, meetings=[TUE_9])
    new = factory.course(semester, meetings=[TUE_9])  # conflicts with a course that stays
    student = factory.student()
    register(client, factory, student, old)
    register(client, factory, student, kept)
    assert refused(swap(client, factory, student, new, old), 409, "SCHEDULE_CONFLICT")["conflicts_with"] == kept.id
    mine = client.get(f"/semesters/{semester.id}/my-courses", headers=factory.auth(student)).json()
    assert sorted(c["course_id"] for c in mine) == sorted([old.id, kept.id])


def test_swap_errors(client, factory):
    semester = factory.semester()
    course, other = factory.course(semester), factory.course(semester)
    student = factory.student()
    refused(swap(client, factory, student, course, other), 404, "NOT_REGISTERED")
    register(client, factory, student, other)
    refused(swap(client, factory, student, other, other), 422, "SWAP_SAME_COURSE")
    response = client.post(f"/courses/{course.id}/swap", json={}, headers=factory.auth(student))
    assert response.status_code == 422


def test_a_swap_retried_with_its_key_replays_the_first_answer(client, factory):
    semester = factory.semester()
    old, new = factory.course(semester), factory.course(semester)
    student = factory.student()
    register(client, factory, student, old)
    first = swap(client, factory, student, new, old, **{"Idempotency-Key": "swap-1"})
    again = swap(client, factory, student, new, old, **{"Idempotency-Key": "swap-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


# ---- what is recorded -----------------------------------------------------------------------------


def test_every_change_leaves_its_event_in_my_history(client, factory):
    semester = factory.semester()
    full = factory.course(semester, capacity=1, reserve_limit=2)
    other = factory.course(semester)
    first, second = factory.students(2)
    register(client, factory, first, full)
    register(client, factory, second, full)
    client.post(f"/courses/{full.id}/drop", headers=factory.auth(first))
    swap(client, factory, second, other, full)

    def history(student):
        response = client.get(f"/semesters/{semester.id}/my-history", headers=factory.auth(student))
        assert response.status_code == 200
        return [(e["event_type"], e["course_id"], e["reserve_position"]) for e in reversed(response.json())]

    assert history(first) == [("ENROLLED", full.id, None), ("DROPPED", full.id, None)]
    assert history(second) == [
        ("RESERVED", full.id, 1),
        ("PROMOTED", full.id, 1),
        ("ENROLLED", other.id, None),
        ("SWAPPED", full.id, None),
    ]
    [swapped] = [
        e
        for e in client.get(f"/semesters/{semester.id}/my-history", headers=factory.auth(second)).json()
        if e["event_type"] == "SWAPPED"
    ]
    assert swapped["details"]["to_course_id"] == other.id
    assert swapped["actor"] == f"student:{second.id}"


def test_a_refused_attempt_writes_no_event(client, factory, engine):
    course = factory.course(capacity=0, reserve_limit=0)
    student = factory.student()
    refused(register(client, factory, student, course), 409, "COURSE_FULL")
    with engine.connect() as connection:
        events = connection.scalar(
            text("SELECT count(*) FROM registration_events WHERE student_id = :id"), {"id": student.id}
        )
    assert events == 0


@pytest.mark.parametrize("path", ["my-status", "my-history"])
def test_an_unknown_semester_is_404(client, factory, path):
    response = client.get(f"/semesters/2147483000/{path}", headers=factory.auth(factory.student()))
    refused(response, 404, "SEMESTER_NOT_FOUND")


def test_rules_changed_between_the_read_and_the_course_lock_are_judged_again(factory, engine):
    """The course's credits change while a registration waits for the course lock: the
    registration is judged on the new credits, and counts them."""
    from app.registrations import service
    from app.registrations.errors import CreditLimitExceeded

    semester = factory.semester()
    course = factory.course(semester, credits=3)
    student = factory.student()
    with engine.begin() as connection:
        connection.execute(text("UPDATE students SET max_credits = 4 WHERE id = :id"), {"id": student.id})
    registered = threading.Event()
    outcome: list[object] = []

    def attempt():
        with Session(engine) as session:
            try:
                outcome.append(
                    service.register(session, student_id=student.id, course_id=course.id, now=datetime.now(UTC))
                )
            except CreditLimitExceeded as error:
                outcome.append(error)
        registered.set()

    with engine.connect() as editor:
        transaction = editor.begin()
        editor.execute(text("SELECT 1 FROM courses WHERE id = :c FOR UPDATE"), {"c": course.id})
        worker = threading.Thread(target=attempt)
        worker.start()
        time.sleep(0.5)  # the registration has read the rules (3 credits) and waits for the lock
        editor.execute(text("UPDATE courses SET credits = 5 WHERE id = :c"), {"c": course.id})
        transaction.commit()
    worker.join(timeout=10)
    assert isinstance(outcome[0], CreditLimitExceeded)


def test_a_full_course_is_refused_without_waiting_for_its_lock(factory, engine):
    """A refusal writes nothing, so it is answered from the counters read a moment ago:
    while somebody holds the course's row, a request for the full course is not queued."""
    from app.registrations import service
    from app.registrations.errors import CourseFull

    course = factory.course(capacity=1, reserve_limit=0)
    holder, latecomer = factory.students(2)
    with Session(engine) as session:
        service.register(session, student_id=holder.id, course_id=course.id, now=datetime.now(UTC))
    with engine.connect() as editor:
        transaction = editor.begin()
        editor.execute(text("SELECT 1 FROM courses WHERE id = :c FOR UPDATE"), {"c": course.id})
        # Held for as long as the test runs: waiting for it would end in LOCK_TIMEOUT instead.
        with Session(engine) as session, pytest.raises(CourseFull):
            service.register(session, student_id=latecomer.id, course_id=course.id, now=datetime.now(UTC))
        transaction.rollback()
