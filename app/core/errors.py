"""Errors with a stable machine-readable code, and their HTTP rendering.

Each domain keeps its own errors beside its service (`app/<domain>/errors.py`);
they subclass `DomainError`, and every subclass with a code is recorded in
`ERROR_CODES` as it is defined. The framework's own errors (validation, unknown
route, ...) are recorded here with `register_code`. `ERROR_CODES` is the one
list: the OpenAPI responses are built from it, and tests compare the README's
table and the load-test client's expected codes with it.

One handler per kind of exception renders `{"detail": ..., "code": ...}`.
"""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("app.errors")


class ErrorBody(BaseModel):
    """Every error response: a human-readable detail and a stable machine-readable code."""

    detail: str
    code: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Validation errors (422 only)")
    request_id: str | None = Field(default=None, description="Present on 500: quote it when reporting")
    # What a refusal of the registration rules says besides its code.
    opens_at: datetime | None = Field(
        default=None, description="APPOINTMENT_NOT_STARTED: when the student may register"
    )
    reasons: list[str] | None = Field(default=None, description="REGISTRATION_HOLD: the active holds' reasons")
    missing: list[str] | None = Field(default=None, description="PREREQUISITE_MISSING: the codes not completed")
    conflicts_with: int | None = Field(default=None, description="SCHEDULE_CONFLICT: the course id it overlaps")
    credits: int | None = Field(default=None, description="CREDIT_LIMIT_EXCEEDED: the student's credits now")
    course_credits: int | None = Field(default=None, description="CREDIT_LIMIT_EXCEEDED: the course's credits")
    max_credits: int | None = Field(default=None, description="CREDIT_LIMIT_EXCEEDED: the student's limit")
    # What NOT_YET_ADMITTED says (the waiting room, app/waiting_room/).
    position: int | None = Field(
        default=None, description="NOT_YET_ADMITTED: places ahead of the student's, itself included; null: no place yet"
    )
    estimated_admission_at: datetime | None = Field(
        default=None, description="NOT_YET_ADMITTED: when the student's place should be admitted"
    )


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status_code: int
    detail: str


# Every code the API can answer with, in the order defined.
ERROR_CODES: dict[str, ErrorCode] = {}


def register_code(code: str, status_code: int, detail: str) -> ErrorCode:
    known = ERROR_CODES.get(code)
    if known is not None and known.status_code != status_code:
        raise ValueError(f"error code {code} is already {known.status_code}, not {status_code}")
    ERROR_CODES[code] = ErrorCode(code, status_code, detail)
    return ERROR_CODES[code]


# Read-only: class attributes shared by every instance of an error.
BEARER_CHALLENGE: Mapping[str, str] = MappingProxyType({"WWW-Authenticate": "Bearer"})
RETRY_SOON: Mapping[str, str] = MappingProxyType({"Retry-After": "1"})


class DomainError(Exception):
    """Raised by services; rendered by the one handler. A subclass that sets `code`
    is recorded in ERROR_CODES when it is defined."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    detail: str = "Bad request"
    headers: Mapping[str, str] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            register_code(cls.code, cls.status_code, cls.detail)

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail
        # More fields of the body (ErrorBody declares each), e.g. `missing` for PREREQUISITE_MISSING.
        self.extra = extra


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "DATABASE_UNAVAILABLE"
    detail = "The database is unavailable; retry shortly"
    headers = RETRY_SOON


class LockTimeout(ServiceUnavailable):
    code = "LOCK_TIMEOUT"
    detail = "The course is busy; retry shortly"


class StatementTimeout(ServiceUnavailable):
    code = "STATEMENT_TIMEOUT"
    detail = "The database took too long to answer; retry shortly"


class ServiceBusy(ServiceUnavailable):
    code = "SERVICE_BUSY"
    detail = "The service is busy; retry shortly"


class Conflict(DomainError):
    """A write the database refused by a constraint that no service check caught
    first. Services check before they write, so this is a race or a bug, but a
    client still gets a stable 409, never a 500."""

    status_code = 409
    code = "CONFLICT"
    detail = "The request conflicts with the current state"


class ReferencedRowMissing(DomainError):
    status_code = 404
    code = "REFERENCED_ROW_NOT_FOUND"
    detail = "A row this request refers to does not exist (any more)"


# HTTP errors raised by the framework itself (unknown route, wrong method, ...).
_FRAMEWORK_CODES = {
    status: register_code(code, status, detail)
    for status, code, detail in (
        (400, "BAD_REQUEST", "Request body that cannot be decoded"),
        (401, "NOT_AUTHENTICATED", "Not authenticated"),
        (404, "NOT_FOUND", "Not found"),
        (405, "METHOD_NOT_ALLOWED", "Method not allowed"),
        (413, "PAYLOAD_TOO_LARGE", "Request body too large"),
    )
}
# Answered by the server's protocol (app/runtime/protocol.py) before any route runs.
HEADERS_TOO_LARGE = register_code("HEADERS_TOO_LARGE", 431, "Request head (request line and headers) too large")
REQUEST_TIMEOUT = register_code("REQUEST_TIMEOUT", 408, "The request head did not arrive in time")
VALIDATION_ERROR = register_code("VALIDATION_ERROR", 422, "Request validation failed")
INTERNAL_ERROR = register_code("INTERNAL_ERROR", 500, "Internal server error")

# PostgreSQL SQLSTATEs. Lock and statement timeouts mean "try again shortly", not "bug".
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"
_FOREIGN_KEY_VIOLATION = "23503"
# Public: services that name what was taken (a semester's name, ...) catch this one.
UNIQUE_VIOLATION = "23505"


def _error_body(detail: Any, code: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code, **extra}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def integrity_error_as_domain_error(error: IntegrityError) -> DomainError:
    """A constraint the database enforced: a missing referenced row is a 404,
    any other (unique, check, exclusion) a 409 CONFLICT."""
    if getattr(error.orig, "pgcode", None) == _FOREIGN_KEY_VIOLATION:
        return ReferencedRowMissing()
    return Conflict()


def install_error_handlers(app: FastAPI) -> None:
    def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        body = _error_body(exc.detail, exc.code, **jsonable_encoder(exc.extra))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")} for err in exc.errors()
        ]
        return JSONResponse(
            _error_body(VALIDATION_ERROR.detail, VALIDATION_ERROR.code, errors=errors),
            status_code=VALIDATION_ERROR.status_code,
        )

    def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        known = _FRAMEWORK_CODES.get(exc.status_code)
        code = known.code if known else f"HTTP_{exc.status_code}"
        headers = dict(exc.headers or {})
        allow = headers.get("Allow", "")
        if "GET" in allow.split(", ") and "HEAD" not in allow:
            headers["Allow"] = f"{allow}, HEAD"  # every GET route answers HEAD (app/core/edge.py)
        return JSONResponse(_error_body(exc.detail, code), status_code=exc.status_code, headers=headers)

    def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        sqlstate = getattr(exc.orig, "pgcode", None)
        error: DomainError
        if isinstance(exc, IntegrityError):
            error = integrity_error_as_domain_error(exc)
        elif sqlstate == _LOCK_NOT_AVAILABLE:  # lock_timeout
            error = LockTimeout()
        elif sqlstate == _QUERY_CANCELED:  # statement_timeout (nothing else here cancels queries)
            error = StatementTimeout()
        elif isinstance(exc, OperationalError) or exc.connection_invalidated:
            error = ServiceUnavailable()
        else:
            return handle_unexpected_error(request, exc)
        logger.warning("database error %s on %s: %s", error.code, request.url.path, exc.orig)
        return handle_domain_error(request, error)

    def handle_pool_timeout(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("connection pool exhausted on %s", request.url.path)
        return handle_domain_error(request, ServiceBusy())

    def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        # Handlers run outside the `except` block: pass the exception explicitly.
        logger.error(
            "unhandled error on %s %s (request id %s)", request.method, request.url.path, request_id, exc_info=exc
        )
        return JSONResponse(
            _error_body(INTERNAL_ERROR.detail, INTERNAL_ERROR.code, request_id=request_id),
            status_code=INTERNAL_ERROR.status_code,
            headers={"X-Request-ID": request_id},
        )

    app.add_exception_handler(DomainError, handle_domain_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(DBAPIError, handle_database_error)
    app.add_exception_handler(PoolTimeoutError, handle_pool_timeout)
    app.add_exception_handler(Exception, handle_unexpected_error)
