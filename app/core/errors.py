"""Domain errors with a stable machine-readable code, and their HTTP rendering.

Services raise these; one handler turns each into `{"detail": ..., "code": ...}`.
"""

import logging
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("app.errors")


class ErrorBody(BaseModel):
    """Every error response: a human-readable detail and a stable machine-readable code."""

    detail: str
    code: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Validation errors (422 only)")
    request_id: str | None = Field(default=None, description="Present on 500: quote it when reporting")


# Documented on every route; the body is the same shape whatever the status.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Request body that cannot be decoded (not UTF-8)",
        401: "Missing, invalid or expired token",
        404: "Not found",
        409: "Conflict with the current state (ALREADY_REGISTERED, COURSE_FULL, REGISTRATION_CLOSED)",
        413: "Request body too large",
        422: "Malformed request",
        429: "Too many requests; see Retry-After",
        503: "Temporarily unavailable; retry after Retry-After seconds",
    }.items()
}


# Read-only: class attributes shared by every instance of an error.
_BEARER_CHALLENGE: Mapping[str, str] = MappingProxyType({"WWW-Authenticate": "Bearer"})
_RETRY_SOON: Mapping[str, str] = MappingProxyType({"Retry-After": "1"})


class DomainError(Exception):
    status_code: int = 400
    code: str = "BAD_REQUEST"
    detail: str = "Bad request"
    headers: Mapping[str, str] | None = None

    def __init__(self, detail: str | None = None):
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class NotAuthenticated(DomainError):
    status_code = 401
    code = "NOT_AUTHENTICATED"
    detail = "Not authenticated"
    headers = _BEARER_CHALLENGE


class InvalidToken(DomainError):
    status_code = 401
    code = "INVALID_TOKEN"
    detail = "Invalid or expired token"
    headers = _BEARER_CHALLENGE


class InvalidCredentials(DomainError):
    status_code = 401
    code = "INVALID_CREDENTIALS"
    detail = "Incorrect student number or password"
    headers = _BEARER_CHALLENGE


class SemesterNotFound(DomainError):
    status_code = 404
    code = "SEMESTER_NOT_FOUND"
    detail = "Semester not found"


class CourseNotFound(DomainError):
    status_code = 404
    code = "COURSE_NOT_FOUND"
    detail = "Course not found"


class NotRegistered(DomainError):
    status_code = 404
    code = "NOT_REGISTERED"
    detail = "You are not registered for this course"


class AlreadyRegistered(DomainError):
    status_code = 409
    code = "ALREADY_REGISTERED"
    detail = "You are already registered for this course"


class CourseFull(DomainError):
    status_code = 409
    code = "COURSE_FULL"
    detail = "The course and its reserve list are full"


class RegistrationClosed(DomainError):
    status_code = 409
    code = "REGISTRATION_CLOSED"
    detail = "Registration is not open for this semester"


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    detail = "This Idempotency-Key was already used for a different request"


class TooManyLoginAttempts(DomainError):
    status_code = 429
    code = "TOO_MANY_LOGIN_ATTEMPTS"
    detail = "Too many failed logins; try again later"

    def __init__(self, retry_after_seconds: int):
        super().__init__()
        self.headers = {"Retry-After": str(retry_after_seconds)}


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "DATABASE_UNAVAILABLE"
    detail = "The database is unavailable; retry shortly"
    headers = _RETRY_SOON


class LockTimeout(ServiceUnavailable):
    code = "LOCK_TIMEOUT"
    detail = "The course is busy; retry shortly"


class StatementTimeout(ServiceUnavailable):
    code = "STATEMENT_TIMEOUT"
    detail = "The database took too long to answer; retry shortly"


class ServiceBusy(ServiceUnavailable):
    code = "SERVICE_BUSY"
    detail = "The service is busy; retry shortly"


# HTTP errors raised by the framework itself (unknown route, wrong method, ...).
_HTTP_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "NOT_AUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
}

# PostgreSQL SQLSTATEs that mean "try again shortly", not "bug".
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"


def _error_body(detail, code: str, **extra) -> dict:
    return {"detail": detail, "code": code, **extra}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    def handle_domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(_error_body(exc.detail, exc.code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")} for err in exc.errors()
        ]
        return JSONResponse(
            _error_body("Request validation failed", "VALIDATION_ERROR", errors=errors),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        return JSONResponse(_error_body(exc.detail, code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    def handle_database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        sqlstate = getattr(exc.orig, "pgcode", None)
        if sqlstate == _LOCK_NOT_AVAILABLE:  # lock_timeout
            error: DomainError = LockTimeout()
        elif sqlstate == _QUERY_CANCELED:  # statement_timeout (nothing else here cancels queries)
            error = StatementTimeout()
        elif isinstance(exc, OperationalError) or exc.connection_invalidated:
            error = ServiceUnavailable()
        else:
            return handle_unexpected_error(request, exc)
        logger.warning("database error %s on %s: %s", error.code, request.url.path, exc.orig)
        return handle_domain_error(request, error)

    @app.exception_handler(PoolTimeoutError)
    def handle_pool_timeout(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        logger.warning("connection pool exhausted on %s", request.url.path)
        return handle_domain_error(request, ServiceBusy())

    @app.exception_handler(Exception)
    def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        # Handlers run outside the `except` block: pass the exception explicitly.
        logger.error(
            "unhandled error on %s %s (request id %s)", request.method, request.url.path, request_id, exc_info=exc
        )
        return JSONResponse(
            _error_body("Internal server error", "INTERNAL_ERROR", request_id=request_id),
            status_code=500,
            headers={"X-Request-ID": request_id},
        )
