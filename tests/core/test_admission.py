"""Admission control (app/core/admission.py): a bounded number of requests in
progress per worker, a short queue in arrival order, and an immediate 503 with a
Retry-After beyond it. The gate alone, then on a served worker whose writes are
held up by a locked course, while reads keep answering."""

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from app.core.admission import AcceptQueue, AdmissionGate, GatePressure, LoopLag, worker_pressure
from app.core.errors import ServiceBusy
from app.waiting_room.rules import PaceStep, pace_step
from tests.support.servers import start_server


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_gate_admits_up_to_capacity_then_queues_in_arrival_order():
    async def scenario():
        gate = AdmissionGate(capacity=2, queue_limit=5, max_wait_seconds=5)
        order: list[int] = []
        release = asyncio.Event()

        async def request(number: int):
            async with gate.admit():
                order.append(number)
                await release.wait()

        tasks = [asyncio.create_task(request(n)) for n in range(6)]
        await asyncio.sleep(0.05)
        assert (gate.holders, gate.waiting, order) == (2, 4, [0, 1])
        release.set()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4, 5]
        assert (gate.holders, gate.waiting) == (0, 0)

    run(scenario())


def test_past_the_queue_the_answer_is_an_immediate_503_with_retry_after():
    async def scenario():
        clock = [0.0]
        gate = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=5, clock=lambda: clock[0])
        for _ in range(20):  # 20 completions in the last 5 s: a drain rate of 4 per second
            async with gate.admit():
                clock[0] += 0.1
        hold = asyncio.Event()

        async def holder():
            async with gate.admit():
                await hold.wait()

        tasks = [asyncio.create_task(holder()) for _ in range(2)]  # one in progress, one queued
        await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ServiceBusy) as refused:
            async with gate.admit():
                pass
        assert time.monotonic() - started < 0.1
        assert refused.value.headers is not None
        assert refused.value.headers["Retry-After"] == "1"  # 2 ahead at 4 per second: under a second
        hold.set()
        await asyncio.gather(*tasks)

    run(scenario())


def test_retry_after_follows_the_measured_drain_rate():
    async def scenario():
        clock = [0.0]
        gate = AdmissionGate(capacity=1, queue_limit=100, max_wait_seconds=60, clock=lambda: clock[0])
        for _ in range(5):  # one completion per second
            async with gate.admit():
                clock[0] += 1.0
        hold = asyncio.Event()

        async def holder():
            async with gate.admit():
                await hold.wait()

        tasks = [asyncio.create_task(holder()) for _ in range(10)]
        await asyncio.sleep(0.01)
        assert gate.retry_after_seconds() == 10  # 10 ahead at one per second
        hold.set()
        await asyncio.gather(*tasks)

    run(scenario())


def test_a_wait_past_its_bound_is_refused_and_leaves_the_queue():
    async def scenario():
        gate = AdmissionGate(capacity=1, queue_limit=5, max_wait_seconds=0.05)
        hold = asyncio.Event()

        async def holder():
            async with gate.admit():
                await hold.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceBusy):
            async with gate.admit():
                pass
        assert gate.waiting == 0
        hold.set()
        await task
        assert gate.holders == 0

    run(scenario())


def test_a_waiter_that_goes_away_gives_its_turn_to_the_next():
    async def scenario():
        gate = AdmissionGate(capacity=1, queue_limit=5, max_wait_seconds=5)
        hold = asyncio.Event()
        admitted: list[str] = []

        async def request(name: str):
            async with gate.admit():
                admitted.append(name)
                await hold.wait()

        first = asyncio.create_task(request("first"))
        await asyncio.sleep(0.01)
        leaver = asyncio.create_task(request("leaver"))
        stayer = asyncio.create_task(request("stayer"))
        await asyncio.sleep(0.01)
        leaver.cancel()
        hold.set()
        await first
        await stayer
        assert admitted == ["first", "stayer"]
        assert (gate.holders, gate.waiting) == (0, 0)

    run(scenario())


# ---- on a served worker ---------------------------------------------------------------------------


@pytest.mark.live_server
def test_a_storm_of_writes_meets_503s_at_once_while_reads_keep_answering(database_url, raw_engine, factory):
    server = start_server(
        database_url,
        workers=1,
        extra_env={
            "WRITE_ADMISSION_CAPACITY": "2",
            "WRITE_ADMISSION_QUEUE": "3",
            "WRITE_ADMISSION_PER_COURSE": "2",  # one course here: let it take both places
            "ADMISSION_MAX_WAIT_SECONDS": "30",
            "DB_LOCK_TIMEOUT_MS": "20000",
        },
    )
    try:
        semester = factory.semester()
        course = factory.course(semester, capacity=100)
        students = factory.students(12)
        reader = factory.student()
        answers: list[tuple[int, str | None, str | None, float]] = []
        lock = threading.Lock()

        def register(student):
            started = time.monotonic()
            response = httpx.post(
                f"{server.base_url}/courses/{course.id}/register", headers=factory.auth(student), timeout=60
            )
            code = response.json().get("code") if response.status_code != 200 else None
            with lock:
                answers.append(
                    (response.status_code, code, response.headers.get("retry-after"), time.monotonic() - started)
                )

        # The course row is held: every admitted write waits for it.
        with raw_engine.connect() as blocker:
            transaction = blocker.begin()
            blocker.execute(text("SELECT 1 FROM courses WHERE id = :c FOR UPDATE"), {"c": course.id})
            with ThreadPoolExecutor(max_workers=12) as pool:
                futures = [pool.submit(register, student) for student in students]
                deadline = time.monotonic() + 10
                while len(answers) < 7 and time.monotonic() < deadline:  # 12 - 2 in progress - 3 queued
                    time.sleep(0.05)
                refused = list(answers)
                # Reads have their own gate: my-courses answers while the writes wait.
                started = time.monotonic()
                mine = httpx.get(
                    f"{server.base_url}/semesters/{semester.id}/my-courses", headers=factory.auth(reader), timeout=10
                )
                read_seconds = time.monotonic() - started
                transaction.rollback()
                for future in futures:
                    future.result()
        assert len(refused) == 7, refused
        assert all(status == 503 and code == "SERVICE_BUSY" for status, code, _, _ in refused), refused
        assert all(retry_after is not None and int(retry_after) >= 1 for _, _, retry_after, _ in refused)
        assert all(seconds < 5 for _, _, _, seconds in refused)  # at once, not after a long wait
        assert mine.status_code == 200
        assert read_seconds < 5
        assert sorted(status for status, _, _, _ in answers).count(200) == 5  # the admitted and the queued
    finally:
        server.stop()


def test_retry_after_counts_the_clients_already_refused():
    """Refused clients come back: the more were refused lately, the later the next is told to return."""

    async def scenario():
        clock = [0.0]
        gate = AdmissionGate(capacity=1, queue_limit=0, max_wait_seconds=5, clock=lambda: clock[0])
        for _ in range(10):  # two completions per second over the last 5 s
            async with gate.admit():
                clock[0] += 0.5
        hold = asyncio.Event()

        async def holder():
            async with gate.admit():
                await hold.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        told = []
        for _ in range(20):
            with pytest.raises(ServiceBusy) as refused:
                async with gate.admit():
                    pass
            told.append(int(refused.value.headers["Retry-After"]))
        assert told[0] == 1 and told[-1] == 11  # 1 in progress + 20 refused, at 2 per second
        assert told == sorted(told)
        hold.set()
        await task

    run(scenario())


def test_one_key_holds_at_most_its_share_and_the_others_go_on():
    """A course whose row is held up cannot take every place: writes to other courses go in."""

    async def scenario():
        gate = AdmissionGate(capacity=4, queue_limit=10, max_wait_seconds=5, per_key_limit=2)
        hold = asyncio.Event()
        admitted: list[str] = []

        async def request(key: str, name: str):
            async with gate.admit(key):
                admitted.append(name)
                await hold.wait()

        stuck = [asyncio.create_task(request("hot", f"hot-{n}")) for n in range(5)]
        await asyncio.sleep(0.01)
        assert admitted == ["hot-0", "hot-1"] and gate.waiting == 3
        other = asyncio.create_task(request("other", "other-0"))
        await asyncio.sleep(0.01)
        assert "other-0" in admitted  # past the hot course's waiters, into a free place
        hold.set()
        await asyncio.gather(*stuck, other)
        assert admitted[3:] == ["hot-2", "hot-3", "hot-4"]  # the hot course's own order kept
        assert (gate.holders, gate.waiting) == (0, 0)

    run(scenario())


def test_the_pressure_is_the_mean_queue_wait_and_the_refusals_of_the_last_second():
    async def scenario():
        clock = [0.0]
        gate = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=60, clock=lambda: clock[0])
        for _ in range(3):  # straight in: no wait
            async with gate.admit():
                pass
        assert gate.pressure() == GatePressure(admitted=3, mean_wait_s=0.0, refused=0)

        hold = asyncio.Event()

        async def holder():
            async with gate.admit():
                await hold.wait()

        first = asyncio.create_task(holder())
        queued = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceBusy):  # the queue is full
            async with gate.admit():
                pass
        clock[0] += 0.4
        assert gate.pressure().oldest_wait_s == pytest.approx(0.4)
        hold.set()
        await asyncio.gather(first, queued)
        pressure = gate.pressure()
        # Five went in within the last second (3 + the holder + the queued one, which waited 0.4 s).
        assert (pressure.admitted, pressure.refused, pressure.oldest_wait_s) == (5, 1, 0.0)
        assert pressure.mean_wait_s == pytest.approx(0.4 / 5)
        clock[0] += 1.5  # a quiet second later, nothing is left of it
        assert gate.pressure() == GatePressure(admitted=0, mean_wait_s=0.0, refused=0)

    run(scenario())


def test_the_loop_lag_is_how_late_timers_ran_while_the_loop_was_busy():
    async def scenario():
        lag = LoopLag(interval=0.01)
        lag.start()
        await asyncio.sleep(0.1)
        assert lag.recent() < 0.05  # an idle loop runs its timers about on time
        for _ in range(10):  # the loop kept busy, as by a stream of requests: 50 ms of work a turn
            time.sleep(0.05)
            await asyncio.sleep(0)
        assert lag.recent() > 0.02
        gate = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=1)
        assert worker_pressure([gate], lag)().loop_lag_s == lag.recent()
        lag.stop()

    run(scenario())


def test_the_loop_lag_forgets_what_is_older_than_its_window():
    clock = [0.0]
    lag = LoopLag(clock=lambda: clock[0])
    lag.note(0.4)
    lag.note(0.2)
    assert lag.recent() == pytest.approx(0.3)
    clock[0] += 2.0
    assert lag.recent() == 0.0


def test_the_workers_pressure_is_the_worst_of_its_gates():
    async def scenario():
        clock = [0.0]
        writes = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=60, clock=lambda: clock[0])
        reads = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=60, clock=lambda: clock[0])
        for _ in range(4):  # writes go straight through
            async with writes.admit():
                pass
        hold = asyncio.Event()

        async def reader():
            async with reads.admit():
                await hold.wait()

        readers = [asyncio.create_task(reader()) for _ in range(2)]  # one reads, one queues
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceBusy):  # a read refused: the read gate's queue is full
            async with reads.admit():
                pass
        clock[0] += 0.3
        pressure = worker_pressure([writes, reads], LoopLag(clock=lambda: clock[0]))()
        assert (pressure.admitted, pressure.refused) == (1, 1)  # the reads' share refused, not the writes'
        assert pressure.oldest_wait_s == pytest.approx(0.3)
        hold.set()
        await asyncio.gather(*readers)

    run(scenario())


def test_the_accept_queue_counts_connections_not_yet_accepted_and_their_wait():
    clock = [0.0]
    queue = AcceptQueue(clock=lambda: clock[0])
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(64)
        queue.watch(listening)
        assert queue.waiting() == 0 and queue.wait_s() == 0.0
        clients = [socket.create_connection(listening.getsockname()) for _ in range(6)]
        try:
            deadline = time.monotonic() + 5
            while queue.waiting() < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert queue.waiting() == 6  # connected by the kernel, never accepted
            for _ in range(3):  # the worker accepted three a second lately
                queue.accepted()
            assert queue.wait_s() == pytest.approx(2.0)
            accepted, _ = listening.accept()
            accepted.close()
            assert queue.waiting() == 5
            # The pace hears it: it grows no more while connections wait at the door.
            gate = AdmissionGate(capacity=1, queue_limit=1, max_wait_seconds=1)
            pressure = worker_pressure([gate], LoopLag(), queue)()
            assert pressure.accept_wait_s == pytest.approx(5 / 3)
            assert pace_step(pressure) is PaceStep.HOLD
        finally:
            for client in clients:
                client.close()
