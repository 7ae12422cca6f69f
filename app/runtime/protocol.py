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
- the answer past the connection limit as our JSON 503 SERVICE_BUSY.

Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
These are the smallest correct places for these checks: the bytes are counted
as they arrive, before httptools buffers them. In the several-node topology,
HAProxy applies its own limits in front (README, "Protection at the edge").
"""

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


async def _service_busy(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer past `limit_concurrency`, as our JSON error."""
    headers, body = _json_answer(ERROR_CODES["SERVICE_BUSY"], (b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Set `max_head_bytes` and `head_timeout_seconds` on a subclass (see `bounded_protocol`)."""

    max_head_bytes = 16 * 1024
    head_timeout_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
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
        super()._start_asgi_task(cycle, _service_busy if app is service_unavailable else app)

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
    """A protocol class with these bounds (uvicorn instantiates it per connection)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout_seconds": head_timeout_seconds},
    )
