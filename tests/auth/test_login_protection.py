"""Login that cannot be turned against students (#16, item 2), against a live server
with two worker processes that share nothing but PostgreSQL.

Every request opens a new connection (`Connection: close`), so requests spread over
both workers; each client address is a loopback address of its own (127.0.0.x), bound
as the connection's source, which is what the server counts against.
"""

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from app.auth import throttle
from app.core import security
from tests.support.concurrency import run_all_at_once
from tests.support.environment import TEST_PASSWORD
from tests.support.servers import answered_by_worker, start_server

PAIR_LIMIT = 3
CLIENT_FAILURE_LIMIT = 20
SLOWDOWN_BUDGET = 4
SLOWDOWN_FIRST = 0.3
SLOWDOWN_MAX = 1.2
STUDENT_SUCCESS_LIMIT = 5
CLIENT_SUCCESS_LIMIT = 30
SUCCESS_WINDOW = 60
FAILURE_WINDOW = 120

# Loopback addresses this module hands out, one per call of `fresh_address`.
_addresses = (f"127.0.{third}.{fourth}" for third in range(10, 250) for fourth in range(2, 250))

pytestmark = pytest.mark.live_server


def fresh_address() -> str:
    return next(_addresses)


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="module")
def server(database_url, metrics_dir) -> Iterator[str]:
    live = start_server(
        database_url,
        workers=2,
        extra_env={
            "LOGIN_FAILURE_WINDOW_SECONDS": str(FAILURE_WINDOW),
            "LOGIN_MAX_FAILURES_PER_CLIENT_AND_STUDENT": str(PAIR_LIMIT),
            "LOGIN_MAX_FAILURES_PER_CLIENT": str(CLIENT_FAILURE_LIMIT),
            "LOGIN_STUDENT_FAILURES_BEFORE_SLOWDOWN": str(SLOWDOWN_BUDGET),
            "LOGIN_SLOWDOWN_FIRST_SECONDS": str(SLOWDOWN_FIRST),
            "LOGIN_SLOWDOWN_MAX_SECONDS": str(SLOWDOWN_MAX),
            "LOGIN_SUCCESS_WINDOW_SECONDS": str(SUCCESS_WINDOW),
            "LOGIN_MAX_SUCCESSES_PER_STUDENT": str(STUDENT_SUCCESS_LIMIT),
            "LOGIN_MAX_SUCCESSES_PER_CLIENT": str(CLIENT_SUCCESS_LIMIT),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
    )
    yield live.base_url
    live.stop()


@contextmanager
def client_at(base_url: str, address: str) -> Iterator[httpx.Client]:
    """A client whose connections come from `address`: a new connection per request."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base_url, transport=transport, timeout=60, headers={"Connection": "close"}) as client:
        yield client


def login(client: httpx.Client, student_number: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"student_number": student_number, "password": password})


def assert_refused(response: httpx.Response, *, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "TOO_MANY_LOGIN_ATTEMPTS"
    assert 1 <= int(response.headers["Retry-After"]) <= window


def test_the_owner_from_a_clean_address_gets_in_after_another_address_failed_many_times(server, factory):
    student = factory.student()
    with client_at(server, fresh_address()) as attacker:
        statuses = [login(attacker, student.student_number, f"guess-{i}").status_code for i in range(PAIR_LIMIT + 3)]
        assert statuses == [401] * PAIR_LIMIT + [429] * 3
        # Guessing from there meets 429 even with the right password.
        assert_refused(login(attacker, student.student_number, TEST_PASSWORD), window=FAILURE_WINDOW)
    with client_at(server, fresh_address()) as owner:
        assert login(owner, student.student_number, TEST_PASSWORD).status_code == 200
        # Again and again: nothing the other address did refuses the owner.
        assert login(owner, student.student_number, TEST_PASSWORD).status_code == 200


def test_one_address_guessing_many_students_meets_429_at_the_client_limit(server, factory):
    students = factory.students(CLIENT_FAILURE_LIMIT + 1)
    with client_at(server, fresh_address()) as guesser:
        for student in students[:CLIENT_FAILURE_LIMIT]:
            assert login(guesser, student.student_number, "guess").status_code == 401
        # Even a correct password, for a student who never failed, from that address.
        assert_refused(login(guesser, students[-1].student_number, TEST_PASSWORD), window=FAILURE_WINDOW)
    with client_at(server, fresh_address()) as other:
        assert login(other, students[-1].student_number, TEST_PASSWORD).status_code == 200


def test_guesses_spread_over_many_addresses_are_slowed_down_never_refused_and_the_owner_gets_in(server, factory):
    student = factory.student()
    durations = []
    statuses = Counter()
    for _ in range(6):  # 12 guesses, two from each address: no address reaches its limit
        with client_at(server, fresh_address()) as guesser:
            for _ in range(PAIR_LIMIT - 1):
                started = time.perf_counter()
                statuses[login(guesser, student.student_number, "guess").status_code] += 1
                durations.append(time.perf_counter() - started)
    assert statuses == {401: 12}
    # Within the budget nothing waits; past it, each guess waits longer, up to the cap.
    # Loosely: the machine may be busy, so compare averages, not single timings.
    early = sum(durations[: SLOWDOWN_BUDGET - 1]) / (SLOWDOWN_BUDGET - 1)
    late = sum(durations[-4:]) / 4
    assert late >= early + SLOWDOWN_MAX * 0.7, (early, late, durations)

    with client_at(server, fresh_address()) as owner:
        started = time.perf_counter()
        assert login(owner, student.student_number, TEST_PASSWORD).status_code == 200
        waited = time.perf_counter() - started
    assert waited >= SLOWDOWN_MAX * 0.9  # slowed down too, but let in


def test_correct_logins_in_loops_for_one_student_meet_429(server, factory, metrics_dir):
    """The audit's reproduction: 40 loops logging in with the right password, here each
    from an address of its own (from one address, the per-address count of attempts
    in progress refuses them even sooner)."""
    student, neighbour = factory.student(), factory.student()
    addresses = [fresh_address() for _ in range(40)]

    def loop(address: str) -> list[httpx.Response]:
        responses = []
        with client_at(server, address) as client:
            for _ in range(10):
                responses.append(login(client, student.student_number, TEST_PASSWORD))
                if responses[-1].status_code == 429:
                    break
        return responses

    loops = run_all_at_once(loop, addresses)
    responses = [response for loop_responses in loops for response in loop_responses]
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) == {200, 429}, statuses
    # Successes count once the password matched; only logins already past their turn
    # when the limit was reached can overshoot it.
    assert STUDENT_SUCCESS_LIMIT <= statuses[200] <= STUDENT_SUCCESS_LIMIT + 2 * security.LOGIN_TURNS
    for response in responses:
        if response.status_code == 429:
            assert_refused(response, window=SUCCESS_WINDOW)
    assert all(loop_responses[-1].status_code == 429 for loop_responses in loops)
    with client_at(server, addresses[0]) as client:
        # Per student: another student from the same address is let in.
        assert login(client, neighbour.student_number, TEST_PASSWORD).status_code == 200
    with client_at(server, fresh_address()) as elsewhere:
        assert_refused(login(elsewhere, student.student_number, TEST_PASSWORD), window=SUCCESS_WINDOW)
    # The loops were answered by both worker processes.
    assert len(answered_by_worker(metrics_dir, "/auth/login")) == 2


def test_parallel_correct_logins_for_one_student_from_one_address_meet_429(server, factory):
    """From one address, a student's logins in progress count against the pair's limit."""
    student = factory.student()
    with client_at(server, fresh_address()) as client:
        responses = run_all_at_once(lambda _: login(client, student.student_number, TEST_PASSWORD), range(40))
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) == {200, 429} and statuses[200] <= STUDENT_SUCCESS_LIMIT + 2 * security.LOGIN_TURNS, statuses


def test_many_students_from_one_address_are_let_in_up_to_the_client_limit(server, factory):
    """A class behind one NAT address, all at once: none refused below the limit."""
    students = factory.students(CLIENT_SUCCESS_LIMIT + 1)
    with client_at(server, fresh_address()) as campus:
        responses = run_all_at_once(
            lambda student: login(campus, student.student_number, TEST_PASSWORD), students[:CLIENT_SUCCESS_LIMIT]
        )
        assert Counter(response.status_code for response in responses) == {200: CLIENT_SUCCESS_LIMIT}
        assert_refused(login(campus, students[-1].student_number, TEST_PASSWORD), window=SUCCESS_WINDOW)
    with client_at(server, fresh_address()) as elsewhere:
        assert login(elsewhere, students[-1].student_number, TEST_PASSWORD).status_code == 200


def test_the_slowdown_starts_past_the_budget_doubles_and_is_capped():
    delays = [throttle.slowdown(failures, before=10, first_seconds=0.25, max_seconds=4) for failures in range(40)]
    assert delays[:10] == [0.0] * 10
    assert delays[10:15] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert set(delays[14:]) == {4.0}
    assert throttle.slowdown(10**6, before=1, first_seconds=1, max_seconds=3) == 3
