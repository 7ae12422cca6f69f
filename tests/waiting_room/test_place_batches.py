"""A worker's places written in batches: the places asked while one batch is written go
together into the next, in the order asked; one gone student fails only their own place;
past the bound of waiting places, 503 at once; how long places take is a pressure the
room's pace hears (it holds the pace, never cuts it). The batches live on the event
loop: each test is one worker's loop."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.auth.errors import InvalidToken
from app.core.admission import AcceptQueue, AdmissionGate, LoopLag, worker_pressure
from app.core.errors import ServiceBusy
from app.waiting_room.places import PlaceBatches
from app.waiting_room.rules import PACE_HOLD_WAIT_S, PaceStep, pace_step


class _HeldRow:
    """A transaction that has inserted `student`'s row for the semester and not committed:
    a batch with that student waits on it (the upsert's conflict check) until released."""

    def __init__(self, raw_engine, student, semester) -> None:
        self._connection = raw_engine.connect()
        self._transaction = self._connection.begin()
        self._connection.execute(
            text("INSERT INTO student_terms (student_id, semester_id) VALUES (:st, :s)"),
            {"st": student.id, "s": semester.id},
        )

    def release(self) -> None:
        self._transaction.commit()
        self._connection.close()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _ask(batches: PlaceBatches, student_id, semester) -> "asyncio.Task[int]":
    return asyncio.create_task(batches.ticket(student_id, semester.id))


def _run(scenario: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def test_places_asked_while_a_batch_is_written_go_into_the_next_in_the_order_asked(engine, raw_engine, factory):
    semester = factory.semester()
    first, *others = factory.students(4)
    batches = PlaceBatches(engine)
    held = _HeldRow(raw_engine, first, semester)

    async def scenario() -> tuple[int, list[int]]:
        writing = _ask(batches, first.id, semester)  # its batch waits on the held row
        await _until(lambda: batches.waiting() == 0 and batches.pressure().oldest_wait_s > 0)
        later = [_ask(batches, student.id, semester) for student in others]
        gone = _ask(batches, uuid.uuid4(), semester)
        await _until(lambda: batches.waiting() == len(others) + 1)
        await asyncio.to_thread(held.release)
        tickets = [await task for task in later]
        with pytest.raises(InvalidToken):
            await gone
        first_ticket = await writing
        assert first_ticket < tickets[0]
        # Asked again: the same places, from the rows.
        assert [await batches.ticket(student.id, semester.id) for student in others] == tickets
        return first_ticket, tickets

    _, tickets = _run(scenario)  # type: ignore[misc]
    assert tickets == sorted(tickets) and len(set(tickets)) == len(others)


def test_past_the_bound_of_waiting_places_the_answer_is_service_busy_at_once(engine, raw_engine, factory):
    semester = factory.semester()
    first, *others = factory.students(4)
    batches = PlaceBatches(engine, max_waiting=2)
    held = _HeldRow(raw_engine, first, semester)

    async def scenario() -> None:
        writing = _ask(batches, first.id, semester)
        await _until(lambda: batches.waiting() == 0 and batches.pressure().oldest_wait_s > 0)
        waiting = [_ask(batches, student.id, semester) for student in others[:2]]
        await _until(lambda: batches.waiting() == 2)
        started = time.monotonic()
        with pytest.raises(ServiceBusy):
            await batches.ticket(others[2].id, semester.id)
        assert time.monotonic() - started < 1.0  # refused, not queued
        stuck = batches.pressure()
        assert stuck.refused == 1 and stuck.oldest_wait_s > 0
        # What the room's pace hears: the crowd waiting at the door, which holds it, never cuts it.
        await _until(lambda: batches.pressure().oldest_wait_s > PACE_HOLD_WAIT_S)
        idle_gate = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=1)
        worker = worker_pressure([idle_gate], LoopLag(), AcceptQueue(), places=batches)()
        assert worker.place_wait_s > PACE_HOLD_WAIT_S and worker.refused == 0
        assert pace_step(worker) is PaceStep.HOLD
        await asyncio.to_thread(held.release)
        assert len({await task for task in [writing, *waiting]}) == 3
        answered = batches.pressure()
        assert answered.admitted == 3 and answered.mean_wait_s > 0 and answered.oldest_wait_s == 0

    _run(scenario)


def test_a_failed_batch_answers_every_place_in_it_and_the_next_batch_is_tried_again(factory):
    semester = factory.semester()
    student = factory.student()
    nowhere = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    broken = PlaceBatches(nowhere)

    async def scenario() -> None:
        answers = await asyncio.gather(
            *(broken.ticket(student.id, semester.id) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(answer, OperationalError) for answer in answers), answers
        assert broken.waiting() == 0
        with pytest.raises(OperationalError):  # not stuck behind the failed batch
            await broken.ticket(student.id, semester.id)

    _run(scenario)
    nowhere.dispose()


def test_a_place_whose_request_was_cancelled_does_not_stop_the_others(engine, raw_engine, factory):
    semester = factory.semester()
    first, second, third = factory.students(3)
    batches = PlaceBatches(engine)
    held = _HeldRow(raw_engine, first, semester)

    async def scenario() -> None:
        writing = _ask(batches, first.id, semester)
        await _until(lambda: batches.waiting() == 0 and batches.pressure().oldest_wait_s > 0)
        abandoned, kept = _ask(batches, second.id, semester), _ask(batches, third.id, semester)
        await _until(lambda: batches.waiting() == 2)
        abandoned.cancel()  # the client went away
        await asyncio.to_thread(held.release)
        assert await kept > await writing
        assert abandoned.cancelled()
        # The abandoned place was still written: asking again gives it, before the kept one.
        assert await batches.ticket(second.id, semester.id) < await kept

    _run(scenario)
