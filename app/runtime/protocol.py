"""uvicorn's HTTP protocol (httptools) with the bounds a public server needs.

uvicorn (0.54, httptools) reads a request's headers whole, however large, and
waits for them however slowly they come: one client with a 100 MB header, or
one that sends a byte every two seconds, holds a worker. It can bound open
connections (`limit_concurrency`) but answers past it in plain text. This
subclass adds, per connection:

- a bound on the bytes of a request's head (request line and headers): past it,
  431 HEADERS_TOO_LARGE and the connection is closed, without reading the rest;
- a bound on the time from the first byte of a request (or from the connection's
  opening) to the end of its headers: past it, 408 REQUEST_TIMEOUT and close;
- the answer past the connection limit as our JSON 503 SERVICE_BUSY, with a
  Retry-After computed from how fast this worker's connections have been closing
  and how many clients it refused lately (`ConnectionDrain`), so that refused
  clients spread out instead of all coming back the next second; and instead of
  uvicorn's warning for every refusal (under a flood, a log line per refused
  request is load of its own), one line from the worker when it starts refusing
  and then at most one per REFUSALS_LOG_SECONDS, with the count.

Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
These are the smallest correct places for these checks: the bytes are counted
as they arrive, before httptools buffers them. In the several-node topology,
HAProxy applies its own limits in front (README, "Protection at the edge").
"""

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.admission import ACCEPT_QUEUE, MAX_RETRY_AFTER_SECONDS, RATE_WINDOW_SECONDS, Recent
from app.core.errors import ERROR_CODES, ErrorCode

_STATUS_TEXT = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _json_answer(error: ErrorCode, *extra_headers: tuple[bytes, bytes]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": error.detail, "code": error.code}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra_headers,
    ]
    return headers, body


logger = logging.getLogger(__name__)

# The refusals at the connection limit are logged by count, at most once per this long.
REFUSALS_LOG_SECONDS = 10.0
# uvicorn's own line for each of them (uvicorn.protocols.http, logger "uvicorn.error").
UVICORN_REFUSAL_MESSAGE = "Exceeded concurrency limit."


class WithoutUvicornRefusals(logging.Filter):
    """Drops uvicorn's warning for each request refused at the limit (the worker counts them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != UVICORN_REFUSAL_MESSAGE


# Of the connections open when a request is refused at the limit, the share counted ahead
# of its client. Their clients go on sending requests, and while the worker stays at the
# limit uvicorn refuses those too (and closes their connections): some of them will be
# coming back with the refused. A judgement, not a measurement: at 4,096 open connections
# closing 100 a second, a first refusal is told 5 s rather than 1 s.
OPEN_CONNECTIONS_SHARE = 0.1


class ConnectionDrain:
    """One worker's connections: how fast they have been closing, and how many requests
    were refused at the connection limit lately; from both, a refusal's Retry-After.

    One per worker process (its protocol class's, see `bounded_protocol`): every
    connection of a worker runs on its one event loop, so no locks."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Connections that held a place and closed: the rate places come free at.
        self._closes = Recent(RATE_WINDOW_SECONDS, clock)
        # Requests refused at the limit: their clients come back too.
        self._refusals = Recent(RATE_WINDOW_SECONDS, clock)
        # Refusals not yet logged, and when the last line was.
        self._unlogged = 0
        self._logged_at: float | None = None

    def closed(self) -> None:
        self._closes.note()

    def refused(self) -> None:
        self._refusals.note()
        self._unlogged += 1

    def refusals_to_log(self) -> int:
        """The refusals to log now: all those not logged yet, when the last line is at least
        REFUSALS_LOG_SECONDS old (or there was none); else 0 (they wait for a later one)."""
        now = self._clock()
        if self._unlogged == 0 or (self._logged_at is not None and now - self._logged_at < REFUSALS_LOG_SECONDS):
            return 0
        count, self._unlogged, self._logged_at = self._unlogged, 0, now
        return count

    def close_rate(self) -> float:
        """Connections closed per second over the last few seconds."""
        return self._closes.count() / RATE_WINDOW_SECONDS

    def retry_after_seconds(self, open_connections: int) -> int:
        """How long until the clients ahead of a refused one would have found a place: the
        ones refused in the last few seconds (this one included) and a share of the open
        connections, at the rate connections have been closing. No close in the window
        counts as one (the gate says 1 s when it has measured nothing; a worker at its
        connection limit that has closed nothing for seconds is not about to have room).
        At least 1 s, at most MAX_RETRY_AFTER_SECONDS."""
        ahead = self._refusals.count() + OPEN_CONNECTIONS_SHARE * open_connections
        seconds = ahead * RATE_WINDOW_SECONDS / max(self._closes.count(), 1)  # ahead / close rate
        return min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds)))


def _service_busy(retry_after_seconds: int) -> Callable[[Any, Any, Any], Any]:
    """uvicorn's answer past `limit_concurrency`, as our JSON error (an ASGI app)."""
    headers, body = _json_answer(ERROR_CODES["SERVICE_BUSY"], (b"retry-after", str(retry_after_seconds).encode()))

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return answer


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Set `max_head_bytes` and `head_timeout_seconds` on a subclass (see `bounded_protocol`)."""

    max_head_bytes = 16 * 1024
    head_timeout_seconds = 10.0
    # The worker's, shared by all its connections (`bounded_protocol` gives each server its own).
    drain = ConnectionDrain()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        # Whether a request of this connection was served, or refused at the limit: one
        # refused without ever being served took a place only to give it back at once.
        self._served = False
        self._refused_at_limit = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        ACCEPT_QUEUE.accepted()
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._served or not self._refused_at_limit:
            self.drain.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "HEADERS_TOO_LARGE")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Bytes of the chunk that began this request were not counted; at most one
        # read's worth, so the bound holds to within one chunk.
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # uvicorn picks `service_unavailable` in on_headers_complete when the worker holds
        # `limit_concurrency` connections (or tasks); a pipelined request reaches here later.
        if app is service_unavailable:
            self._refused_at_limit = True
            self.drain.refused()
            if refused := self.drain.refusals_to_log():
                logger.warning(
                    "%d request(s) refused at the connection limit (%d open connections in this worker)"
                    " since the last such line",
                    refused,
                    len(self.connections),
                )
            app = _service_busy(self.drain.retry_after_seconds(len(self.connections)))
        else:
            self._served = True
        super()._start_asgi_task(cycle, app)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if self._reading_head and idle and not self.transport.is_closing():
            self.logger.info("closing %s: no request head within %.0f s", self._peer(), self.head_timeout_seconds)
            self._refuse(408, "REQUEST_TIMEOUT")

    def _refuse(self, status: int, code: str) -> None:
        self._cancel_head_timer()
        self._reading_head = False
        headers, body = _json_answer(ERROR_CODES[code])
        head = b"HTTP/1.1 %d %s\r\n" % (status, _STATUS_TEXT[status])
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(head + b"\r\n" + body)
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"


def bounded_protocol(*, max_head_bytes: int, head_timeout_seconds: float) -> type[BoundedHttpToolsProtocol]:
    """A protocol class with these bounds and its own ConnectionDrain (uvicorn instantiates it
    per connection; each worker process builds its own class, see app/runtime/server.py)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout_seconds": head_timeout_seconds, "drain": ConnectionDrain()},
    )
