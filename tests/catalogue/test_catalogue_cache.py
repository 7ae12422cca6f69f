"""The catalogue cache: an answer is kept for its TTL, per process, then read again.

The cache itself is tested with a clock the test moves; the API tests run the
real endpoints and a real database behind it.
"""

import asyncio
import secrets

import pytest
from fastapi import Response
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.core.cache import ResponseCache
from app.main import create_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """An endpoint that counts its calls and answers with the call number."""

    def __init__(self, status_code: int = 200) -> None:
        self.calls = 0
        self.status_code = status_code

    async def __call__(self) -> Response:
        self.calls += 1
        return Response(str(self.calls).encode(), status_code=self.status_code)


def body(cache: ResponseCache, key, compute) -> str:
    return asyncio.run(cache.get(key, compute)).body.decode()


def test_an_answer_is_kept_for_its_ttl_then_computed_again():
    clock, endpoint = FakeClock(), Counting()
    cache = ResponseCache(ttl_seconds=1.0, clock=clock)

    assert body(cache, "k", endpoint) == "1"
    clock.now += 0.999
    assert body(cache, "k", endpoint) == "1"
    clock.now += 0.001
    assert body(cache, "k", endpoint) == "2"
    assert endpoint.calls == 2


def test_freshness_counts_from_before_the_computation():
    clock = FakeClock()
    cache = ResponseCache(ttl_seconds=1.0, clock=clock)

    async def slow_endpoint():
        clock.now += 0.6  # the query took 0.6 s: the answer is that old already
        return Response(b"old")

    async def newer():
        return Response(b"newer")

    body(cache, "k", slow_endpoint)
    clock.now += 0.5
    assert body(cache, "k", newer) == "newer"


def test_keys_are_kept_apart():
    cache = ResponseCache(ttl_seconds=10.0, clock=FakeClock())
    first, second = Counting(), Counting()
    assert body(cache, ("GET", "/semesters/1/courses", b""), first) == "1"
    assert body(cache, ("GET", "/semesters/1/courses", b"limit=1"), second) == "1"
    assert body(cache, ("GET", "/semesters/1/courses", b""), second) == "1"
    assert (first.calls, second.calls) == (1, 1)


def test_a_zero_ttl_computes_every_time():
    endpoint = Counting()
    cache = ResponseCache(ttl_seconds=0, clock=FakeClock())
    assert [body(cache, "k", endpoint) for _ in range(3)] == ["1", "2", "3"]


def test_only_answers_of_status_200_are_kept():
    endpoint = Counting(status_code=404)
    cache = ResponseCache(ttl_seconds=10.0, clock=FakeClock())
    assert [body(cache, "k", endpoint) for _ in range(2)] == ["1", "2"]


def test_a_failure_is_not_kept():
    cache = ResponseCache(ttl_seconds=10.0, clock=FakeClock())

    async def failing():
        raise LookupError("not found")

    with pytest.raises(LookupError):
        body(cache, "k", failing)
    assert body(cache, "k", Counting()) == "1"


def test_the_least_recently_used_answer_goes_first_when_full():
    endpoint = Counting()
    cache = ResponseCache(ttl_seconds=10.0, max_entries=2, clock=FakeClock())
    body(cache, "a", endpoint)  # 1
    body(cache, "b", endpoint)  # 2
    body(cache, "a", endpoint)  # still 1; now "b" is the least recently used
    body(cache, "c", endpoint)  # 3, pushes "b" out
    assert body(cache, "a", endpoint) == "1"
    assert body(cache, "b", endpoint) == "4"


def test_each_replay_is_a_new_response_with_its_own_header_list():
    cache = ResponseCache(ttl_seconds=10.0, clock=FakeClock())

    async def endpoint():
        return Response(b"[]", media_type="application/json", headers={"X-Total-Count": "0"})

    first = asyncio.run(cache.get("k", endpoint))
    first.raw_headers.append((b"x-request-id", b"one"))  # as the request-id middleware does
    second = asyncio.run(cache.get("k", endpoint))
    assert second is not first
    assert (b"x-request-id", b"one") not in second.raw_headers
    assert dict(second.raw_headers)[b"x-total-count"] == b"0"


def miss_together(cache: ResponseCache, query, *, waiters: int) -> list[str]:
    """One request misses "k" and starts `query`; while it runs, `waiters` more
    requests ask for "k". What each got: the answer's body, or its error's text."""

    async def scenario():
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_query():
            started.set()
            await release.wait()
            return await query()

        async def read():
            try:
                return (await cache.get("k", slow_query)).body.decode()
            except Exception as error:
                return str(error)

        first = asyncio.create_task(read())
        await started.wait()
        others = [asyncio.create_task(read()) for _ in range(waiters)]
        await asyncio.sleep(0)  # every waiter is now waiting on the first one's answer
        release.set()
        return await asyncio.gather(first, *others)

    return asyncio.run(scenario())


def test_requests_missing_the_same_key_at_once_share_one_computation():
    endpoint = Counting()
    assert miss_together(ResponseCache(ttl_seconds=10.0), endpoint, waiters=20) == ["1"] * 21
    assert endpoint.calls == 1


def test_requests_waiting_on_a_failed_computation_all_get_the_failure():
    async def failing_query():
        raise ConnectionError("database unavailable")

    assert miss_together(ResponseCache(ttl_seconds=10.0), failing_query, waiters=5) == ["database unavailable"] * 6


def test_a_waiter_that_goes_away_does_not_cancel_the_others_answer():
    async def scenario():
        cache = ResponseCache(ttl_seconds=10.0)
        release = asyncio.Event()

        async def slow_query():
            await release.wait()
            return Response(b"answer")

        first = asyncio.create_task(cache.get("k", slow_query))
        await asyncio.sleep(0)
        leaving, staying = (asyncio.create_task(cache.get("k", slow_query)) for _ in range(2))
        await asyncio.sleep(0)
        leaving.cancel()
        release.set()
        return [(await task).body for task in (first, staying)], leaving.cancelled()

    assert asyncio.run(scenario()) == ([b"answer", b"answer"], True)


@pytest.fixture
def app(settings):
    return create_app(settings.model_copy(update={"catalogue_cache_seconds": 1.0}))


@pytest.fixture
def cached_client(app):
    clock = FakeClock()
    app.state.response_cache = ResponseCache(ttl_seconds=1.0, clock=clock)
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


def test_a_kept_answer_costs_no_query_and_keeps_its_headers(cached_client, factory, statements_by_engine):
    client, _ = cached_client
    semester = factory.semester()
    factory.course(semester)
    factory.course(semester)
    path = f"/semesters/{semester.id}/courses"

    first = client.get(path)
    queries_for_first = len(statements_by_engine["read"])
    again = client.get(path)

    assert queries_for_first == 1
    assert len(statements_by_engine["read"]) == 1  # the second answer came from the cache
    assert again.content == first.content
    assert again.headers["x-total-count"] == first.headers["x-total-count"] == "2"
    assert again.headers["content-type"] == "application/json"
    # Each answer still gets its own request id, once.
    assert again.headers.get_list("x-request-id") != first.headers.get_list("x-request-id")
    assert len(again.headers.get_list("x-request-id")) == 1


def test_another_query_string_is_another_answer_and_bad_ones_are_still_refused(cached_client, factory):
    client, _ = cached_client
    semester = factory.semester()
    factory.course(semester)
    factory.course(semester)
    path = f"/semesters/{semester.id}/courses"

    assert len(client.get(path).json()) == 2
    assert len(client.get(path, params={"limit": 1}).json()) == 1
    for _ in range(2):
        refused = client.get(path, params={"limit": 0})
        assert refused.status_code == 422
        assert refused.json()["code"] == "VALIDATION_ERROR"


def test_a_404_is_not_kept(cached_client, factory, engine):
    client, _ = cached_client
    semester = factory.semester()
    course_id = 2_000_000_000 + secrets.randbelow(100_000_000)
    assert client.get(f"/courses/{course_id}").status_code == 404

    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO courses (id, semester_id, code, course_name, professor, schedule, max_capacity, "
                "reserve_limit) VALUES (:id, :semester, 'LATE1', 'Added later', 'Prof. Test', 'Mon 09:00-10:30', 10, 0)"
            ),
            {"id": course_id, "semester": semester.id},
        )
    # Within the TTL of the 404: the course is there at once.
    assert client.get(f"/courses/{course_id}").json()["course_name"] == "Added later"
