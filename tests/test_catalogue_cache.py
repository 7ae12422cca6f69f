"""The catalogue cache: an answer is kept for its TTL, per process, then read again.

The cache itself is tested with a clock the test moves; the API test runs the
real endpoints and a real database behind it.
"""

import threading

import pytest
from fastapi.testclient import TestClient

from app.core.cache import TTLCache
from app.main import create_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A compute function that counts its calls and returns the call number."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_an_answer_is_kept_for_its_ttl_then_computed_again():
    clock, compute = FakeClock(), Counting()
    cache = TTLCache(ttl_seconds=1.0, clock=clock)

    assert cache.get("k", compute) == 1
    clock.now += 0.999
    assert cache.get("k", compute) == 1
    clock.now += 0.001
    assert cache.get("k", compute) == 2
    assert compute.calls == 2


def test_freshness_counts_from_before_the_computation():
    clock = FakeClock()
    cache = TTLCache(ttl_seconds=1.0, clock=clock)

    def slow_compute():
        clock.now += 0.6  # the query took 0.6 s: the answer is that old already
        return "answer"

    cache.get("k", slow_compute)
    clock.now += 0.5
    assert cache.get("k", lambda: "newer") == "newer"


def test_keys_are_kept_apart():
    cache = TTLCache(ttl_seconds=10.0, clock=FakeClock())
    assert cache.get(("semester courses", 1), lambda: "one") == "one"
    assert cache.get(("semester courses", 2), lambda: "two") == "two"
    assert cache.get(("semester courses", 1), lambda: "other") == "one"


def test_a_zero_ttl_computes_every_time():
    compute = Counting()
    cache = TTLCache(ttl_seconds=0, clock=FakeClock())
    assert [cache.get("k", compute) for _ in range(3)] == [1, 2, 3]


def test_a_failure_is_not_kept():
    cache = TTLCache(ttl_seconds=10.0, clock=FakeClock())

    def failing():
        raise LookupError("not found")

    with pytest.raises(LookupError):
        cache.get("k", failing)
    assert cache.get("k", lambda: "found") == "found"


def test_the_least_recently_used_answer_goes_first_when_full():
    compute = Counting()
    cache = TTLCache(ttl_seconds=10.0, max_entries=2, clock=FakeClock())
    cache.get("a", compute)  # 1
    cache.get("b", compute)  # 2
    cache.get("a", compute)  # still 1; now "b" is the least recently used
    cache.get("c", compute)  # 3, pushes "b" out
    assert cache.get("a", compute) == 1
    assert cache.get("b", compute) == 4


def miss_together(cache, query, *, waiters):
    """One thread misses "k" and starts `query`; while it runs, `waiters` more
    threads ask for "k". What each thread got: the answer, or its error's text."""
    started, release = threading.Event(), threading.Event()

    def slow_query():
        started.set()
        release.wait(timeout=10)
        return query()

    outcomes = []

    def read():
        try:
            outcomes.append(cache.get("k", slow_query))
        except Exception as error:
            outcomes.append(str(error))

    first = threading.Thread(target=read)
    first.start()
    assert started.wait(timeout=10)
    others = [threading.Thread(target=read) for _ in range(waiters)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=10)
    return outcomes


def test_threads_missing_the_same_key_at_once_share_one_computation():
    calls = []

    def query():
        calls.append(1)
        return "rows"

    assert miss_together(TTLCache(ttl_seconds=10.0), query, waiters=20) == ["rows"] * 21
    assert len(calls) == 1


def test_threads_waiting_on_a_failed_computation_all_get_the_failure():
    def failing_query():
        raise ConnectionError("database unavailable")

    assert miss_together(TTLCache(ttl_seconds=10.0), failing_query, waiters=5) == ["database unavailable"] * 6


@pytest.fixture
def cached_client(settings):
    clock = FakeClock()
    app = create_app(settings.model_copy(update={"catalogue_cache_seconds": 1.0}))
    app.state.catalogue_cache = TTLCache(ttl_seconds=1.0, clock=clock)
    with TestClient(app) as client:
        yield client, clock


def test_the_catalogue_lags_by_at_most_the_ttl_while_registering_decides_on_live_rows(cached_client, factory):
    client, clock = cached_client
    semester = factory.semester()
    course = factory.course(semester, capacity=1, reserve_limit=5)
    first, second = factory.students(2)

    def shown():
        [listed] = client.get(f"/semesters/{semester.id}/courses").json()
        detail = client.get(f"/courses/{course.id}").json()
        return listed["enrolled_count"], detail["enrolled_count"]

    assert shown() == (0, 0)
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(first)).json()["status"] == "ENROLLED"
    # The catalogue still shows the free seat, but registering reads the locked row.
    assert shown() == (0, 0)
    assert client.post(f"/courses/{course.id}/register", headers=factory.auth(second)).json()["status"] == "RESERVED"

    clock.now += 1.0
    assert shown() == (1, 1)

