"""A worker's places written in batches: the places asked while one batch is written go
together into the next, in the order asked; one gone student fails only their own place;
past the bound of waiting places, 503 at once; how long places take is a pressure the
room's pace hears."""

import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app.auth.errors import InvalidToken
from app.core.errors import ServiceBusy
from app.waiting_room.places import PlaceBatches


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


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _ask(pool: ThreadPoolExecutor, batches: PlaceBatches, student_id, semester) -> Future[int]:
    return pool.submit(batches.ticket, student_id, semester.id)


def test_places_asked_while_a_batch_is_written_go_into_the_next_in_the_order_asked(engine, raw_engine, factory):
    semester = factory.semester()
    first, *others = factory.students(4)
    batches = PlaceBatches(engine)
    held = _HeldRow(raw_engine, first, semester)
    with ThreadPoolExecutor(max_workers=5) as pool:
        writing = _ask(pool, batches, first.id, semester)  # blocked on the held row
        _wait_until(lambda: batches.waiting() == 0)
        later = []
        for count, student in enumerate(others, start=1):  # one at a time: a known order
            later.append(_ask(pool, batches, student.id, semester))
            _wait_until(lambda count=count: batches.waiting() == count)
        gone = _ask(pool, batches, uuid.uuid4(), semester)
        _wait_until(lambda: batches.waiting() == len(others) + 1)
        held.release()
        tickets = [future.result(timeout=10) for future in later]
        with pytest.raises(InvalidToken):
            gone.result(timeout=10)
        first_ticket = writing.result(timeout=10)
    assert tickets == sorted(tickets) and len(set(tickets)) == len(others)
    assert first_ticket < tickets[0]
    # Asked again: the same places, from the rows.
    assert [batches.ticket(student.id, semester.id) for student in others] == tickets


def test_past_the_bound_of_waiting_places_the_answer_is_service_busy_at_once(engine, raw_engine, factory):
    semester = factory.semester()
    first, *others = factory.students(4)
    batches = PlaceBatches(engine, max_waiting=2)
    held = _HeldRow(raw_engine, first, semester)
    with ThreadPoolExecutor(max_workers=4) as pool:
        writing = _ask(pool, batches, first.id, semester)
        _wait_until(lambda: batches.waiting() == 0)
        waiting = [_ask(pool, batches, student.id, semester) for student in others[:2]]
        _wait_until(lambda: batches.waiting() == 2)
        started = time.monotonic()
        with pytest.raises(ServiceBusy):
            batches.ticket(others[2].id, semester.id)
        assert time.monotonic() - started < 1.0  # refused, not queued
        stuck = batches.pressure()  # what the room's pace hears: a refusal, and places waiting
        assert stuck.refused == 1 and stuck.oldest_wait_s > 0
        held.release()
        assert len({future.result(timeout=10) for future in [writing, *waiting]}) == 3
    answered = batches.pressure()
    assert answered.admitted == 3 and answered.mean_wait_s > 0 and answered.oldest_wait_s == 0


def test_a_failed_batch_answers_every_place_in_it_and_the_next_batch_is_tried_again(factory):
    semester = factory.semester()
    student = factory.student()
    nowhere = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    broken = PlaceBatches(nowhere)
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            broken.ticket(student.id, semester.id)
        except OperationalError as error:
            failures.append(error)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(failures) == 3 and broken.waiting() == 0
    with pytest.raises(OperationalError):  # not stuck behind the failed batch
        broken.ticket(student.id, semester.id)
    nowhere.dispose()
