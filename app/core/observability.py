"""Request ids, one structured log line per request, and Prometheus metrics.

Pure ASGI middleware (no BaseHTTPMiddleware): it adds a few microseconds per
request and never buffers a body.

Metrics are correct with several worker processes when PROMETHEUS_MULTIPROC_DIR
names an empty directory shared by the workers (`make run` and the container set
it): each worker writes its own files and `/metrics` adds them up.
"""

import json
import logging
import os
import random
import re
import time

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is echoed only when it is short and plain, so it cannot forge log lines.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_logger = logging.getLogger("app.access")

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the end of the response",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/courses/{course_id}/register`), never
    the raw path: raw paths would give metrics unbounded label values."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, log_requests: bool = True):
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # 128 random bits, as hex: unique enough to find one request's lines, and
        # without uuid4's system call for every request.
        request_id = _incoming_request_id(scope) or f"{random.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_code = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status_code)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            if self.log_requests:
                student_id = scope["state"].get("student_id")
                staff_id = scope["state"].get("staff_id")
                access_logger.info(
                    json.dumps(
                        {
                            "method": scope["method"],
                            "route": route,
                            "path": scope["path"],
                            "status": status_code,
                            "duration_ms": round(elapsed * 1000, 2),
                            "request_id": request_id,
                            "student_id": str(student_id) if student_id else None,
                            "staff_id": str(staff_id) if staff_id else None,
                        }
                    )
                )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTABLE_REQUEST_ID.match(candidate) else None
    return None


metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition; sums every worker's samples in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
        payload = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        payload = generate_latest(REGISTRY)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
