"""A per-process cache that keeps an answer for a fraction of a second.

During the registration rush thousands of students refresh the same few
catalogue pages every second. Kept for `ttl_seconds`, each page costs the
database one query per worker process per `ttl_seconds`, however many students
are reading it, and a reader waits for no query at all. What it costs: what a
reader sees may be up to `ttl_seconds` old. That is only ever a display;
registering always decides on the locked course row.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    fresh_until: float


class TTLCache(Generic[V]):
    """Thread-safe; at most `max_entries` answers, the least recently used dropped first.

    When an answer is missing or too old, one thread computes it and the others
    asking for the same key meanwhile wait for that result (one query, not one
    per waiting thread). A failure is not kept: each waiter gets it, and the next
    request tries again. With `ttl_seconds <= 0` every call computes.
    """

    def __init__(
        self, *, ttl_seconds: float, max_entries: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._mutex = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._in_flight: dict[Hashable, Future[V]] = {}

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        if self.ttl_seconds <= 0:
            return compute()
        with self._mutex:
            entry = self._entries.get(key)
            if entry is not None and entry.fresh_until > self._clock():
                self._entries.move_to_end(key)
                return entry.value
            in_flight = self._in_flight.get(key)
            computing_here = in_flight is None
            if computing_here:
                in_flight = self._in_flight[key] = Future()
        if not computing_here:
            return in_flight.result()
        return self._compute(key, compute, in_flight)

    def _compute(self, key: Hashable, compute: Callable[[], V], in_flight: Future[V]) -> V:
        # Freshness counts from before the query: an answer is never older than the TTL.
        started = self._clock()
        try:
            value = compute()
        except BaseException as error:
            with self._mutex:
                del self._in_flight[key]
            in_flight.set_exception(error)
            raise
        with self._mutex:
            self._entries[key] = _Entry(value, started + self.ttl_seconds)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            del self._in_flight[key]
        in_flight.set_result(value)
        return value
