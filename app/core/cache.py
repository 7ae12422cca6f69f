"""A per-process cache that keeps a route's answers for a fraction of a second.

During the registration rush thousands of students refresh the same few
catalogue pages every second. Kept for `ttl_seconds`, each page costs the
database one query per worker process per `ttl_seconds`, however many students
are reading it, and a reader waits for no query at all. What it costs: what a
reader sees may be up to `ttl_seconds` old. That is only ever a display;
registering always decides on the locked course row.

The cache sits in front of the route's handler, on the event loop, as a
reverse proxy's micro-cache would: an answer it has costs no dependency
solving, no threadpool hop and no validation. The endpoint behind it stays a
plain `def`, and runs only on a miss. Between bursts, when each read arrives on
its own, the hop was most of a read's cost: during a storm of logins, the
password checks were losing a tenth of the machine to catalogue readers.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A finished answer, replayed as a new `Response` each time it is sent."""

    status_code: int
    body: bytes
    raw_headers: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def of(cls, response: Response) -> "StoredResponse":
        return cls(response.status_code, bytes(response.body), tuple(response.raw_headers))

    def replay(self) -> Response:
        response = Response(self.body, status_code=self.status_code)
        # A new list each time: middleware appends its own headers to it.
        response.raw_headers = list(self.raw_headers)
        return response


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: StoredResponse
    fresh_until: float


class ResponseCache:
    """At most `max_entries` answers of status 200, the least recently used dropped first.

    Used from the event loop only, so it needs no locks. When an answer is
    missing or too old, the first request computes it and the requests asking
    for the same key meanwhile wait for that one answer (one query, not one per
    waiting request), holding no thread while they wait. A failure is not kept:
    each waiter gets it, and the next request tries again. With
    `ttl_seconds <= 0` every request computes its own answer.
    """

    def __init__(
        self, *, ttl_seconds: float, max_entries: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._in_flight: dict[Hashable, asyncio.Future[StoredResponse]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Response]]) -> Response:
        if self.ttl_seconds <= 0:
            return await compute()
        entry = self._entries.get(key)
        if entry is not None and entry.fresh_until > self._clock():
            self._entries.move_to_end(key)
            return entry.answer.replay()
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            # Shielded: a waiter that goes away does not cancel the others' answer.
            return (await asyncio.shield(in_flight)).replay()
        return await self._compute(key, compute)

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Response]]) -> Response:
        in_flight = self._in_flight[key] = asyncio.get_running_loop().create_future()
        # Freshness counts from before the query: an answer is never older than the TTL.
        started = self._clock()
        try:
            response = await compute()
            answer = StoredResponse.of(response)
        except Exception as error:
            in_flight.set_exception(error)
            in_flight.exception()  # marks it seen: no "never retrieved" warning when nobody waited
            raise
        except BaseException:
            in_flight.cancel()  # cancelled, as when the server stops: so are the waiters
            raise
        finally:
            del self._in_flight[key]
        if answer.status_code == 200:
            self._entries[key] = _Entry(answer, started + self.ttl_seconds)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        in_flight.set_result(answer)
        return response


def _declared_names(dependant: Dependant, kind: str) -> set[str]:
    """The names of the path or query parameters a route and its dependencies declare."""
    names = {param.alias for param in getattr(dependant, kind)}
    for sub_dependant in dependant.dependencies:
        names |= _declared_names(sub_dependant, kind)
    return names


class CachedRoute(APIRoute):
    """A route whose answers are kept in `app.state.response_cache`. For public GET
    routes only: the key ignores every header, the bearer token included. Errors
    raised by the endpoint are never kept.

    The key is the route and the values of the parameters it declares, never the
    raw path or query string: unknown query parameters and their order change
    nothing, so a client cannot make many entries out of one answer. Ids and
    page numbers have one accepted spelling (app/core/params.py), and only
    answers of status 200 are kept, so every key names one validated request.

    Only reads may be cached: a route with any other method refuses to be built,
    so a write can never be put on a cached router by mistake.
    """

    CACHEABLE_METHODS = frozenset({"GET", "HEAD"})

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        methods = self.methods or set()
        if not methods or not methods <= self.CACHEABLE_METHODS:
            raise TypeError(f"CachedRoute serves GET and HEAD only; {path} asks for {', '.join(sorted(methods))}")
        self._path_names = tuple(sorted(_declared_names(self.dependant, "path_params")))
        self._query_names = tuple(sorted(_declared_names(self.dependant, "query_params")))

    def cache_key(self, request: Request) -> Hashable:
        path_params, query = request.path_params, request.query_params
        return (
            self.path,
            tuple(path_params.get(name) for name in self._path_names),
            tuple(query.get(name) for name in self._query_names),
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_through_cache(request: Request) -> Response:
            cache: ResponseCache = request.app.state.response_cache
            return await cache.get(self.cache_key(request), lambda: handle(request))

        return handle_through_cache
