"""Small ASGI layers at the edge: which Host names we answer to, and HEAD.

Both are plain ASGI middleware (no Request objects, no response wrapping) so a
request that passes costs a header scan and nothing more.
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import register_code

INVALID_HOST = register_code("INVALID_HOST", 400, "This host name is not served here")


def host_matches(host: str, allowed: list[str]) -> bool:
    """`host` (without its port) against names and `*.domain` patterns."""
    for pattern in allowed:
        if pattern in ("*", host):
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _host_name(header: bytes) -> str:
    host = header.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8500
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AllowedHostsMiddleware:
    """Refuse, with a JSON 400, a request whose Host header names a host not in ALLOWED_HOSTS."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((value for name, value in scope["headers"] if name == b"host"), b"")
            if not host_matches(_host_name(header), self.allowed_hosts):
                body = json.dumps({"detail": INVALID_HOST.detail, "code": INVALID_HOST.code}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": INVALID_HOST.status_code,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class HeadAsGetMiddleware:
    """HEAD is answered as GET would be, without the body (RFC 9110: a HEAD answer
    carries the GET answer's headers). FastAPI routes declare GET only; this
    serves HEAD on every one of them, the catalogue cache included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A new scope: the server keeps seeing HEAD in its own, and sends no body either.
        await self.app({**scope, "method": "GET"}, receive, send_without_body)
