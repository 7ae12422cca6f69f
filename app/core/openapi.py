"""The OpenAPI document, shaped for client generators.

- Operation ids are the route functions' names (`register_for_course`).
- Each operation lists the errors it can really answer (`errors(...)`, from
  ERROR_CODES), with the headers they carry; `ErrorBody.code` is an enum of
  every code; every answer declares `X-Request-ID`.
- 405 and a refused CORS preflight can happen on any path, never on an
  operation as documented: they are described once, in `components.responses`.
- Swagger UI and ReDoc are served from the assets of a pinned package
  (fastapi-offline), never from a CDN, and only when DOCS_ENABLED (on by
  default outside production).
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from app.core.cors import CORS_REFUSED
from app.core.edge import INVALID_HOST
from app.core.errors import ERROR_CODES, INTERNAL_ERROR, ErrorBody

# What every operation may answer, and what every one that reads the database may.
ANY_REQUEST = (INVALID_HOST.code, INTERNAL_ERROR.code)
DATABASE = ("DATABASE_UNAVAILABLE", "STATEMENT_TIMEOUT", "SERVICE_BUSY")
# A locked write: a lock wait past DB_LOCK_TIMEOUT_MS, or a constraint the database enforced.
WRITE = (*DATABASE, "LOCK_TIMEOUT", "CONFLICT", "REFERENCED_ROW_NOT_FOUND")
# A bearer token of the wrong kind (a staff token on a student route) is 403 FORBIDDEN.
AUTHENTICATED = ("NOT_AUTHENTICATED", "INVALID_TOKEN", "FORBIDDEN")
# The /admin routes (a student token, or a staff token of another role, is 403).
REGISTRAR = AUTHENTICATED
INPUT = ("VALIDATION_ERROR",)
BODY = ("BAD_REQUEST", "PAYLOAD_TOO_LARGE", "VALIDATION_ERROR")

_STATUS_SUMMARIES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden for this token",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "Malformed request",
    429: "Too many requests",
    500: "Internal error; quote the request_id",
    503: "Temporarily unavailable; safe to retry",
}


def _header(description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": schema_type}}


REQUEST_ID_HEADER_DOC = {"X-Request-ID": _header("This request's id (the client's own X-Request-ID, when it sent one)")}
RETRY_AFTER_HEADER_DOC = {"Retry-After": _header("Seconds to wait before retrying", "integer")}
TOTAL_COUNT_HEADER_DOC = {"X-Total-Count": _header("How many items the whole list holds", "integer")}
REPLAYED_HEADER_DOC = {
    "Idempotent-Replayed": _header("`true` when this is the stored answer to an Idempotency-Key retry")
}
_HEADERS_BY_STATUS = {
    401: {"WWW-Authenticate": _header("`Bearer`")},
    429: RETRY_AFTER_HEADER_DOC,
    503: RETRY_AFTER_HEADER_DOC,
}
# Codes whose answers carry a header their status does not always carry.
_HEADERS_BY_CODE = {"NOT_YET_ADMITTED": RETRY_AFTER_HEADER_DOC}


def errors(*groups: Iterable[str]) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that can answer these codes (and ANY_REQUEST)."""
    codes = {*ANY_REQUEST, *(code for group in groups for code in group)}
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_CODES[code].status_code, []).append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, status_codes in sorted(by_status.items()):
        headers = dict(_HEADERS_BY_STATUS.get(status, {}))
        for code in status_codes:
            headers.update(_HEADERS_BY_CODE.get(code, {}))
        responses[status] = {
            "model": ErrorBody,
            "description": f"{_STATUS_SUMMARIES.get(status, 'Error')}: {', '.join(sorted(status_codes))}",
            **({"headers": headers} if headers else {}),
        }
    return responses


def ok(**headers: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """Headers a route's 200 answer carries besides X-Request-ID."""
    merged: dict[str, Any] = {}
    for header in headers.values():
        merged.update(header)
    return {200: {"headers": merged}}


def operation_id(route: APIRoute) -> str:
    return route.name


def _build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schemas = document["components"]["schemas"]
    schemas["ErrorBody"]["properties"]["code"] = {
        "type": "string",
        "title": "Code",
        "description": "Stable and machine-readable; the README's error table says what each means",
        "enum": sorted(ERROR_CODES),
    }
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for response in operation["responses"].values():
                response.setdefault("headers", {}).update(REQUEST_ID_HEADER_DOC)
    method_not_allowed = ERROR_CODES["METHOD_NOT_ALLOWED"]
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    not_found = ERROR_CODES["NOT_FOUND"]
    document["components"]["responses"] = {
        "NotFound": {
            "description": f"A path this API does not have: {not_found.code}",
            "headers": REQUEST_ID_HEADER_DOC,
            "content": error_body,
        },
        "MethodNotAllowed": {
            "description": f"Any path, a method it does not serve: {method_not_allowed.code}, with `Allow`",
            "headers": {"Allow": _header("The methods this path serves"), **REQUEST_ID_HEADER_DOC},
            "content": error_body,
        },
        "RequestHeadTooLarge": {
            "description": f"A request head over MAX_REQUEST_HEAD_BYTES: {ERROR_CODES['HEADERS_TOO_LARGE'].code}",
            "headers": {"Connection": _header("`close`")},
            "content": error_body,
        },
        "RequestHeadTimeout": {
            "description": f"A request head not complete in time: {ERROR_CODES['REQUEST_TIMEOUT'].code}",
            "headers": {"Connection": _header("`close`")},
            "content": error_body,
        },
        "CorsPreflightRefused": {
            "description": f"A browser's preflight (OPTIONS) from an origin not allowed: {CORS_REFUSED.code}",
            "headers": REQUEST_ID_HEADER_DOC,
            "content": error_body,
        },
    }
    return document


def install_openapi(app: FastAPI, *, docs_enabled: bool) -> None:
    """Replace FastAPI's document builder with ours, and serve the docs from local assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document

    if not docs_enabled:
        return
    assets = str(Path(fastapi_offline.__file__).parent / "static")
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    title = f"{app.title} - API documentation"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=title,
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )
