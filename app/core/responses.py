"""JSON responses rendered in the endpoint's own thread.

For a plain `def` endpoint, FastAPI validates and serializes the returned value
in a second threadpool hop after the endpoint has returned. On these small
machines a hop costs about as much as the query behind a read (docs/performance.md),
so the busiest routes render their JSON themselves, in the thread they already
run in, and return the finished response. The route keeps its `response_model`,
so the OpenAPI schema and the bytes on the wire stay exactly as they were.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import Response
from pydantic import TypeAdapter


class JSONBody:
    """Validates and renders one response type; build one per route, at import."""

    def __init__(self, response_type: Any) -> None:
        self._adapter = TypeAdapter(response_type)

    def response(self, value: Any, *, headers: Mapping[str, str] | None = None) -> Response:
        # from_attributes: ORM objects and result rows are read like the schemas' own models.
        body = self._adapter.validate_python(value, from_attributes=True)
        return Response(self._adapter.dump_json(body), media_type="application/json", headers=headers)
