"""Places under concurrency: one per student however often they ask at once, unique and in
order across workers (each a thread with its own event loop and batches, asking many at
once), and one frontier for every server process."""

import asyncio
import itertools
import time
from collections import defaultdict
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from app.waiting_room import service
from app.waiting_room.places import PlaceBatches
from app.waiting_room.rules import RoomState
from tests.support.concurrency import run_all_at_once
from tests.support.servers import start_server
from tests.support.waiting_room import ADMISSION_HEADER, ticket_of


def ask(engine, settings, semester):
    """A worker: its own loop and batches, asked for every one of `students` at once."""
    room = RoomState(semester.id, on=True, admitted_through=0, rate_per_s=1.0)

    def worker(students):
        places = PlaceBatches(engine)

        async def take(student):
            place = await service.take_place(
                places, student_id=student.id, room=room, now=datetime.now(UTC), settings=settings
            )
            return student.id, ticket_of(place.admission_token)

        async def all_at_once():
            return await asyncio.gather(*(take(student) for student in students))

        return asyncio.run(all_at_once())

    return worker


def in_workers(engine, settings, semester, calls, *, workers: int = 4):
    """`calls` (students) dealt round-robin to `workers` workers, started together; every answer."""
    worker = ask(engine, settings, semester)
    return [
        answer for answers in run_all_at_once(worker, [calls[n::workers] for n in range(workers)]) for answer in answers
    ]


def queue_tickets(engine, semester) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text("SELECT queue_ticket FROM student_terms WHERE semester_id = :s AND queue_ticket IS NOT NULL"),
                {"s": semester.id},
            )
        )


def test_each_student_gets_exactly_one_place_when_asking_from_many_workers_at_once(engine, settings, factory):
    semester = factory.semester()
    students = factory.students(30)
    calls = [student for student in students for _ in range(4)]
    results = in_workers(engine, settings, semester, calls)
    told: dict[object, set[int]] = defaultdict(set)
    for student_id, ticket in results:
        told[student_id].add(ticket)
    assert all(len(tickets) == 1 for tickets in told.values()), told
    tickets = sorted(ticket for (ticket,) in told.values())
    assert len(set(tickets)) == len(students)
    assert sorted(queue_tickets(engine, semester)) == tickets  # what each was told is what is stored
    # Gaps only where one student's simultaneous first calls drew a number each: fewer than the extra calls.
    assert tickets[-1] - tickets[0] + 1 - len(tickets) < len(calls) - len(students)


def test_one_student_asking_twenty_times_at_once_has_one_place(engine, settings, factory):
    semester = factory.semester()
    student = factory.student()
    results = in_workers(engine, settings, semester, [student] * 20)
    assert len({ticket for _, ticket in results}) == 1
    assert queue_tickets(engine, semester) == [results[0][1]]


@pytest.fixture(scope="module")
def two_nodes(database_url):
    """Two servers of one worker each against the same database: two nodes of a cluster."""
    servers = [start_server(database_url, workers=1) for _ in range(2)]
    yield [server.base_url for server in servers]
    for server in servers:
        server.stop()


@pytest.mark.live_server
@pytest.mark.slow
def test_two_server_processes_share_one_frontier(two_nodes, factory, raw_engine):
    semester = factory.semester()
    course = factory.course(semester, capacity=100)
    students = factory.students(30)
    rate = 10.0
    with httpx.Client(base_url=two_nodes[0], timeout=30) as client:
        response = client.put(
            f"/admin/semesters/{semester.id}/waiting-room",
            json={"enabled": True, "rate_per_s": rate},
            headers=factory.staff_auth(factory.staff()),
        )
        assert response.status_code == 200
    started = time.monotonic()

    def take(index_and_student):
        index, student = index_and_student
        with httpx.Client(base_url=two_nodes[index % 2], timeout=30) as client:
            response = client.post(f"/semesters/{semester.id}/queue", headers=factory.auth(student))
            assert response.status_code == 200, response.text
            return student, response.json()

    places = run_all_at_once(take, list(enumerate(students)))
    tickets = {student.id: ticket_of(place["admission_token"]) for student, place in places}
    assert len(set(tickets.values())) == len(students)
    tokens = {student.id: place["admission_token"] for student, place in places}

    # Everybody polls both nodes in turn until admitted; note when each was first seen admitted.
    admitted_at: dict[object, float] = {}
    clients = [httpx.Client(base_url=url, timeout=30) for url in two_nodes]
    try:
        turn = 0
        while len(admitted_at) < len(students):
            assert time.monotonic() - started < 60, f"{len(admitted_at)} of {len(students)} admitted"
            for student in students:
                if student.id in admitted_at:
                    continue
                turn += 1
                body = clients[turn % 2].get(f"/semesters/{semester.id}/queue/me", headers=factory.auth(student)).json()
                assert ticket_of(body["admission_token"]) == tickets[student.id]
                if body["admitted"]:
                    admitted_at[student.id] = time.monotonic()
            time.sleep(0.05)
        # A token the other node handed out is good here: nothing is stored per node.
        first = students[0]
        other_node = clients[1]  # students[0] got its place from node 0
        response = other_node.post(
            f"/courses/{course.id}/register", headers={**factory.auth(first), ADMISSION_HEADER: tokens[first.id]}
        )
        assert response.status_code == 200, response.text
    finally:
        for client in clients:
            client.close()

    elapsed = max(admitted_at.values()) - started
    # 30 places at 10 a second from one shared frontier: about 3 s. Two frontiers, one per
    # node, would each admit at the full pace and take half as long.
    assert elapsed > 0.6 * len(students) / rate
    # In ticket order, up to how stale a node's view can be (a tick) and the polling.
    ordered = sorted(students, key=lambda s: tickets[s.id])
    for earlier, later in itertools.pairwise(ordered):
        assert admitted_at[earlier.id] <= admitted_at[later.id] + 1.0
    with raw_engine.connect() as connection:
        through = connection.scalar(
            text("SELECT admitted_through FROM waiting_rooms WHERE semester_id = :s"), {"s": semester.id}
        )
    assert through >= max(tickets.values())
