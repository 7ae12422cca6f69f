"""Bounds on what one connection can take from a worker, against the served app
(`python -m app.runtime.server`, as `make run` serves it), over raw sockets:
a huge request head, a slow one, an idle connection, too many connections, and
whose X-Forwarded-For is believed."""

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bench.live_server import LiveServer
from tests.support.environment import TEST_ENV
from tests.support.servers import start_server

pytestmark = pytest.mark.live_server

LIMITS = {
    "MAX_REQUEST_HEAD_BYTES": "4096",
    "REQUEST_HEAD_TIMEOUT_SECONDS": "1",
    "KEEP_ALIVE_TIMEOUT_SECONDS": "1",
    "MAX_CONNECTIONS_PER_WORKER": "6",
}


@pytest.fixture(scope="module")
def bounded_server(database_url) -> Iterator[LiveServer]:
    server = start_server(database_url, workers=1, extra_env=LIMITS)
    yield server
    server.stop()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, headers, body), reading until the body is complete or EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_request_head_over_the_bound_is_431_without_reading_the_rest(bounded_server):
    sock = connect(bounded_server)
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192)
    status, headers, body = read_answer(sock)
    assert status == 431
    assert json.loads(body)["code"] == "HEADERS_TOO_LARGE"
    assert headers["connection"] == "close"
    # The rest of a 10 MB header is never awaited: the server has closed.
    with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012 (writing until refused)
        for _ in range(1000):
            sock.sendall(b"a" * 10240)
            time.sleep(0.001)
    assert time.monotonic() - started < 5
    sock.close()


def test_a_head_of_normal_size_is_served(bounded_server):
    sock = connect(bounded_server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Fine: " + b"a" * 3000 + b"\r\n\r\n")
    status, _, body = read_answer(sock)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    sock.close()


def test_a_head_sent_a_byte_at_a_time_is_cut_off(bounded_server):
    sock = connect(bounded_server)
    started = time.monotonic()
    answer = b""
    try:
        for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:
        pass  # closed by the server, as it should be
    sock.settimeout(2)
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    assert time.monotonic() - started < 6
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"REQUEST_TIMEOUT"' in answer
    sock.close()


def test_a_connection_that_sends_nothing_is_closed(bounded_server):
    sock = connect(bounded_server)
    assert closed_by_server(sock, within=4)
    sock.close()


def test_an_idle_keep_alive_connection_is_closed(bounded_server):
    sock = connect(bounded_server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert read_answer(sock)[0] == 200
    assert closed_by_server(sock, within=4)
    sock.close()


def test_past_the_connection_bound_requests_get_a_json_503(bounded_server):
    held = [connect(bounded_server) for _ in range(6)]
    try:
        time.sleep(0.2)  # every connection accepted by the one worker
        told = []
        # 10 refused within the held connections' REQUEST_HEAD_TIMEOUT_SECONDS (1 s), each
        # on a connection of its own, which the answer closes.
        for _ in range(10):
            sock = connect(bounded_server)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = read_answer(sock)
            assert status == 503
            assert json.loads(body)["code"] == "SERVICE_BUSY"
            assert headers["connection"] == "close"
            told.append(int(headers["retry-after"]))
            sock.close()
        # From the worker's close rate and the clients it refused lately (unit tests:
        # test_connection_drain.py): later refusals are told to wait longer, never past 30 s.
        assert all(1 <= seconds <= 30 for seconds in told), told
        assert told == sorted(told) and told[-1] > told[0], told
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    sock = connect(bounded_server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert read_answer(sock)[0] == 200  # served again once the others are gone
    sock.close()


# ---- X-Forwarded-For ------------------------------------------------------------------------------


def _failed_login_from(server: LiveServer, forwarded_for: str) -> None:
    sock = connect(server)
    body = json.dumps({"student_number": "NOBODY-FORWARDED", "password": "wrong"}).encode()
    sock.sendall(
        b"POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"X-Forwarded-For: {forwarded_for}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert read_answer(sock)[0] == 401
    sock.close()


def _throttle_keys(raw_engine, address: str) -> list[str]:
    with raw_engine.connect() as connection:
        return list(
            connection.scalars(text("SELECT scope FROM login_throttles WHERE scope LIKE :a"), {"a": f"%{address}%"})
        )


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_configured_proxy(bounded_server, raw_engine):
    _failed_login_from(bounded_server, "203.0.113.7")
    assert _throttle_keys(raw_engine, "203.0.113.7") == []  # the peer's own address counted instead


def test_x_forwarded_for_from_a_configured_proxy_names_the_client(database_url, raw_engine):
    server = start_server(database_url, workers=1, extra_env={"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        _failed_login_from(server, "198.51.100.23")
    finally:
        server.stop()
    assert _throttle_keys(raw_engine, "198.51.100.23") != []


def test_refusals_at_the_connection_limit_are_logged_by_count_not_one_line_each(database_url, tmp_path):
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, **LIMITS}
    log = tmp_path / "api.log"
    with LiveServer(workers=1, env=env, log_path=log, log_level="warning") as server:
        held = [connect(server) for _ in range(6)]
        time.sleep(0.2)  # every connection accepted by the one worker
        for _ in range(5):
            sock = connect(server)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_answer(sock)[0] == 503
            sock.close()
        for sock in held:
            sock.close()
    text = log.read_text()
    assert "Exceeded concurrency limit." not in text  # uvicorn's line for each refusal
    lines = [line for line in text.splitlines() if "refused at the connection limit" in line]
    assert len(lines) == 1 and "1 request(s) refused" in lines[0]  # the first, at once; the rest counted
