import pytest

from app.runtime.embedded_postgres import EmbeddedPostgres


@pytest.fixture
def embedded_postgres(postgres_server) -> EmbeddedPostgres:
    """The session's server when it is the embedded one: the benchmark scenarios create
    databases of their own on it (and the opening runs pgbench from its binaries)."""
    if not isinstance(postgres_server, EmbeddedPostgres):
        pytest.skip("the scenario creates its own databases on the embedded server")
    return postgres_server
