"""The server command (app/runtime/server.py) on a port another process holds: one worker
or several, it binds its own listening sockets and says plainly that it cannot serve."""

import os
import socket
import subprocess
import sys

import pytest


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_port_is_refused_with_a_plain_message(database_url, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.runtime.server",
                "app.asgi:app",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
