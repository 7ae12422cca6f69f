"""What the Schemathesis modules share (tests/openapi/test_fuzz.py, tests/admin/test_admin_fuzz.py)."""

from typing import Any

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings

# The checks a CI run makes (FUZZ_ALL_CHECKS=1 runs every one).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]

# Collection needs the schema before any fixture runs: render it from an app that
# is never called (the engine connects lazily, so no database is needed).
# (`schemathesis.pytest.from_fixture` would load it at test time instead, but its
# loader fails under pytest 9.2: it sets `Function._nodeid`, which is gone.)
UNCONNECTED_SETTINGS = Settings(
    environment="test",
    log_level="WARNING",  # as TEST_ENV: create_app configures logging
    database_url="postgresql+psycopg2://nobody@/never-connected",
)


class FuzzTarget:
    """The ASGI app schemathesis calls. It forwards to the app a module's fixture
    builds; schemathesis wants an app at collection time, and its own probes
    (`ignored_auth`) go to the schema's app, not to one passed per call."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def authorize_every_case(schema: Any, token: str) -> None:
    """Every generated request carries this bearer token (schemathesis also sends secured
    requests without it or with a broken one, and expects a 401)."""

    @schema.auth(refresh_interval=None)
    class BearerToken:
        def get(self, case: Any, context: Any) -> str:
            return token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
