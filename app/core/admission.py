"""Admission control: how many requests of a kind a worker works on at once.

Past saturation, letting every request in makes everybody wait: requests pile up
in the threadpool and the connection pool, each holds memory and a place in
PostgreSQL's lock queue, the CPU per request rises and the throughput falls. A
gate admits at most `capacity` requests at once (about the connection pool, so
admitted requests never wait for a connection), queues at most `queue_limit`
more in arrival order, and refuses the rest at once with 503 SERVICE_BUSY and a
`Retry-After` computed from how fast the gate has been draining. Registration
writes and reads have gates of their own, so a registration storm never starves
"my courses".

A gate lives on the event loop of one worker process and needs no locks: it is
used only from async dependencies (app/registrations/router.py). Its `pressure()`
(how long admitted requests queued lately, how many were refused) is what the
waiting room's adaptive pace follows (app/waiting_room/rules.py::pace_step).
"""

import asyncio
import math
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from app.core.errors import ServiceBusy

# Drain rates and recent refusals are counted over the last this-many seconds (the gates'
# here, and the connection limit's in app/runtime/protocol.py); no Retry-After says more than 30 s.
RATE_WINDOW_SECONDS = 5.0
MAX_RETRY_AFTER_SECONDS = 30
# The pressure is read over a shorter window: the waiting room's pace reacts within it.
PRESSURE_WINDOW_SECONDS = 1.0


class Recent:
    """What happened in the last `window` seconds: each moment, with a value where one
    matters (a wait, a lateness). Older ones are forgotten as new ones come and as they
    are read. The gates, the loop's lateness and the connection limit count with it."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self.window = window
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()

    def note(self, value: float = 0.0) -> None:
        now = self._clock()
        self._samples.append((now, value))
        self._forget(now)

    def count(self, *, within: float | None = None) -> int:
        """How many in the window, or in its last `within` seconds."""
        now = self._clock()
        self._forget(now)
        if within is None:
            return len(self._samples)
        return sum(1 for moment, _ in self._samples if moment >= now - within)

    def mean(self) -> float:
        """The mean value in the window (0 when nothing happened)."""
        self._forget(self._clock())
        samples = self._samples
        return sum(value for _, value in samples) / len(samples) if samples else 0.0

    def _forget(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()


@dataclass(frozen=True, slots=True)
class GatePressure:
    """A gate over the last PRESSURE_WINDOW_SECONDS: requests admitted, the mean time they
    waited in the queue first (0 for those that went straight in), requests refused; and
    how long the first request still in the queue has been waiting (0: nobody waits)."""

    admitted: int
    mean_wait_s: float
    refused: int
    oldest_wait_s: float = 0.0
    # How late the worker's event loop ran its timers (LoopLag): past saturation every
    # request waits this long before any gate sees it. Filled in by `worker_pressure`.
    loop_lag_s: float = 0.0
    # How long a new connection waits to be accepted (AcceptQueue): when the worker's CPU
    # is the limit, before the loop runs late. Filled in by `worker_pressure`.
    accept_wait_s: float = 0.0
    # How long the waiting room's places took lately, or the oldest still unwritten has
    # waited (the crowd at the door, like the connections above). Filled in by `worker_pressure`.
    place_wait_s: float = 0.0


class LoopLag:
    """How late this worker's event loop runs a timer, over the last PRESSURE_WINDOW_SECONDS.

    When the workers' CPU is the limit (on a small machine, before PostgreSQL is), requests
    queue in the loop, in front of every gate: a gate then sees no queue while everybody
    waits. A timer every `interval` seconds measures that wait. Start it on the running
    loop (the app's lifespan)."""

    def __init__(self, *, interval: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lateness = Recent(PRESSURE_WINDOW_SECONDS, clock)
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def note(self, lateness: float) -> None:
        self._lateness.note(lateness)

    def recent(self) -> float:
        """The mean lateness of the last window's timers (0 when none ran)."""
        return self._lateness.mean()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = self._clock() + self.interval
        self._timer = loop.call_later(self.interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.note(max(0.0, self._clock() - self._due))
        self._schedule(loop)


class PressureSource(Protocol):
    def pressure(self) -> GatePressure: ...


class AcceptQueue:
    """Connections waiting for this worker to accept them, and how long the last of them
    will wait at the rate the worker has been accepting.

    When a worker's CPU is the limit, new connections queue in the kernel, in the listening
    socket's accept queue, before the worker sees anything of them: no gate queues and the
    event loop runs its timers on time, while a client waits seconds for its connection
    (measured at the opening with 10,000 students: 500-1,250 connections waited per worker
    for a minute, and places and estimates took 5-10 s). Linux tells a listening socket's
    queue in TCP_INFO (`tcpi_unacked`); elsewhere this says nothing.

    One per worker process (`ACCEPT_QUEUE`): app/runtime/server.py gives it the worker's
    listening socket, the worker's protocol notes each connection it accepts."""

    # struct tcp_info: eight one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked.
    _UNACKED_OFFSET = 24
    _TCP_INFO = getattr(socket, "TCP_INFO", None)

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sockets: list[socket.socket] = []
        self._accepted = Recent(PRESSURE_WINDOW_SECONDS, clock)

    def watch(self, listening: socket.socket) -> None:
        self._sockets.append(listening)

    def accepted(self) -> None:
        self._accepted.note()

    def waiting(self) -> int:
        """Connections queued on the watched sockets, not yet accepted."""
        if self._TCP_INFO is None:
            return 0
        total = 0
        for listening in self._sockets:
            try:
                info = listening.getsockopt(socket.IPPROTO_TCP, self._TCP_INFO, self._UNACKED_OFFSET + 4)
            except OSError:  # closed, or not TCP
                continue
            total += struct.unpack_from("I", info, self._UNACKED_OFFSET)[0]
        return total

    def wait_s(self) -> float:
        """How long the last connection in the queue will wait: the queue over the rate of
        the last PRESSURE_WINDOW_SECONDS' accepts (0 when nothing waits)."""
        waiting = self.waiting()
        if waiting == 0:
            return 0.0
        return waiting * PRESSURE_WINDOW_SECONDS / max(self._accepted.count(), 1)


# This worker process's (see AcceptQueue).
ACCEPT_QUEUE = AcceptQueue()


def worker_pressure(
    gates: Sequence[PressureSource],
    lag: LoopLag,
    accepts: AcceptQueue = ACCEPT_QUEUE,
    *,
    places: PressureSource | None = None,
) -> Callable[[], GatePressure]:
    """The pressure on this worker: the worst of its gates' (an admitted student's first
    requests are reads: their gate fills before the write gate does), with its event
    loop's lateness, and the crowd's wait at the door, apart: the connections it has not
    accepted yet and the waiting room's places (admitting fewer students relieves neither)."""

    def pressure() -> GatePressure:
        readings = [gate.pressure() for gate in gates]
        worst_refused = max(readings, key=lambda r: r.refused / max(r.admitted + r.refused, 1))
        door = places.pressure() if places is not None else None
        return GatePressure(
            admitted=worst_refused.admitted,
            refused=worst_refused.refused,
            mean_wait_s=max(r.mean_wait_s for r in readings),
            oldest_wait_s=max(r.oldest_wait_s for r in readings),
            loop_lag_s=lag.recent(),
            accept_wait_s=accepts.wait_s(),
            place_wait_s=max(door.mean_wait_s, door.oldest_wait_s) if door is not None else 0.0,
        )

    return pressure


class AdmissionGate:
    """At most `capacity` holders at once, at most `per_key_limit` of them for one key (a
    course: a course whose row is locked up cannot take every place, and writes to the
    other courses go on); at most `queue_limit` waiting, first come first served among
    those that may go in."""

    def __init__(
        self,
        *,
        capacity: int,
        queue_limit: int,
        max_wait_seconds: float,
        per_key_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.max_wait_seconds = max_wait_seconds
        self._clock = clock
        self.per_key_limit = per_key_limit or capacity
        self._holders = 0
        self._by_key: Counter[Hashable] = Counter()
        self._waiters: deque[_Waiter] = deque()
        # The last completions: the drain rate Retry-After is computed from.
        self._completions = Recent(RATE_WINDOW_SECONDS, clock)
        # The last refusals: refused clients come back, and Retry-After counts them too,
        # so that they do not all come back in the same second.
        self._refusals = Recent(RATE_WINDOW_SECONDS, clock)
        # The last requests that went in, each with how long it waited first: the pressure.
        self._entries = Recent(PRESSURE_WINDOW_SECONDS, clock)

    @property
    def holders(self) -> int:
        return self._holders

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def drain_rate(self) -> float:
        """Completions per second over the last few seconds."""
        return self._completions.count() / RATE_WINDOW_SECONDS

    def retry_after_seconds(self) -> int:
        """How long until the work ahead of a refused client would have drained: the
        requests in progress and waiting, and the ones refused in the last few seconds
        (they come back too). At least 1 s, at most MAX_RETRY_AFTER_SECONDS."""
        rate = self.drain_rate()
        if rate <= 0:
            return 1
        ahead = self._holders + len(self._waiters) + self._refusals.count()
        return min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(ahead / rate)))

    def pressure(self) -> GatePressure:
        oldest_wait = self._clock() - self._waiters[0].since if self._waiters else 0.0
        return GatePressure(
            admitted=self._entries.count(),
            mean_wait_s=self._entries.mean(),
            refused=self._refusals.count(within=PRESSURE_WINDOW_SECONDS),
            oldest_wait_s=oldest_wait,
        )

    def refuse(self) -> ServiceBusy:
        self._refusals.note()
        error = ServiceBusy()
        error.headers = MappingProxyType({"Retry-After": str(self.retry_after_seconds())})
        return error

    @asynccontextmanager
    async def admit(self, key: Hashable = None) -> AsyncIterator[None]:
        """A place among the holders; `key` (a course) holds at most `per_key_limit` of them."""
        arrived = self._clock()
        if self._may_enter(key):
            self._enter(key)
        elif len(self._waiters) >= self.queue_limit:
            raise self.refuse()
        else:
            await self._wait_for_turn(key, since=arrived)
        self._entries.note(self._clock() - arrived)  # how long it waited
        try:
            yield
        finally:
            self._release(key)

    def _may_enter(self, key: Hashable) -> bool:
        # Waiters ahead are all for keys at their limit when there is room: a newcomer
        # for another key may go first without passing anybody it could have waited for.
        return self._holders < self.capacity and self._by_key[key] < self.per_key_limit

    def _enter(self, key: Hashable) -> None:
        self._holders += 1
        self._by_key[key] += 1

    async def _wait_for_turn(self, key: Hashable, *, since: float) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(key, turn, since)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout=self.max_wait_seconds)
        except TimeoutError:
            if turn.done() and not turn.cancelled():
                return  # the turn came as the timeout fired: keep it
            self._waiters.remove(waiter)
            raise self.refuse() from None
        except asyncio.CancelledError:
            # The client went away while waiting: give a turn already handed over to the next.
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif turn.done():
                self._release(key)
            raise

    def _release(self, key: Hashable) -> None:
        self._completions.note()
        self._holders -= 1
        self._by_key[key] -= 1
        if self._by_key[key] == 0:
            del self._by_key[key]
        # The freed place goes to the first waiter in arrival order whose key is under its limit.
        for waiter in self._waiters:
            if not waiter.turn.done() and self._may_enter(waiter.key):
                self._waiters.remove(waiter)
                self._enter(waiter.key)
                waiter.turn.set_result(None)
                return


@dataclass(eq=False, slots=True)
class _Waiter:
    key: Hashable
    turn: asyncio.Future[None]
    since: float  # when it arrived (the gate's clock)
