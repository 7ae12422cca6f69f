"""The open-model load generator of the opening minute: `python -m bench.opening_client PLAN OUT`.

Every student is a coroutine started at its own arrival time, whatever happened
to the students before it (arrivals never wait for answers: an open model). Each
student opens its own keep-alive connection, as a browser tab does, and then:

1. reads its status (`GET /semesters/{id}/my-status`) and the course list;
2. registers its wishes in order, with a short think time before each; after a
   COURSE_FULL it tries the wish's alternatives in order (at most two);
3. reads "my courses" at the end, and closes the connection.

With the waiting room on (the plan's `room`; issue 17), a student first takes a
place (`POST /semesters/{id}/queue`: kind `place`), then, while not admitted,
waits what the answer's Retry-After says and asks again (`GET .../queue/me`:
kind `wait`, never a hard poll), and sends its admission token as
X-Admission-Token with every registration (a NOT_YET_ADMITTED there, a worker's
frontier a tick behind, is waited out like a 503).

A 503 SERVICE_BUSY is answered as a real client would: wait `Retry-After`
seconds (and up to a tenth more, so that thousands of clients are not in step),
then send the same request again (at most MAX_ATTEMPTS times). A connection the
server closed (`Connection: close`, or an idle keep-alive timed out) is reopened.

The HTTP/1.1 client is a few lines over asyncio streams (uvloop's loop when it
is installed): request bytes out, status line, headers and a Content-Length (or
chunked) body in. A general-purpose client spends several times more CPU per
request, and on two cores the generator competes with the API and PostgreSQL;
the bench measures what this process uses (from wait4) and reports it.

The plan is JSON written by bench/opening.py; the output is one line per
attempt, tab-separated (see FIELDS), CLOCK_MONOTONIC microseconds, preceded by
lines `# t0 <µs>` (the opening), `# unfinished <n>` and `# lateness_ms <JSON>`
(the generator's own loop, the worst lateness of each second: `LoopLateness`) and
followed by `# cpu <seconds>`.
"""

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict

MAX_ATTEMPTS = 20  # per request, 503s included
REQUEST_TIMEOUT_S = 60.0
FIELDS = (
    "student",
    "kind",  # place, wait (the waiting room), status, courses, register, my_courses
    "course",  # the course id for register, else 0
    "wish",  # the wish's number for register (0-4), else -1
    "choice",  # 0 the wish itself, 1-2 its alternatives
    "attempt",  # 1 for the first try; more after 503s or connection errors
    "first_send_us",  # when the first attempt of this request left
    "send_us",
    "end_us",
    "status",  # HTTP status; 0: no answer
    "code",  # ENROLLED, RESERVED, the error code, or the connection error's name
    "position",  # the reserve position; for a 503, 1 when it closed the connection (the connection limit); else 0
)
KINDS = ("place", "wait", "status", "courses", "register", "my_courses")
MAX_WAITS = 200  # GET /queue/me per student at most (each after its Retry-After)


class StudentPlan(TypedDict):
    token: str
    arrival_s: float  # seconds after the opening
    wishes: list[list[int]]  # per wish: [course id, alternative course ids...]


class Plan(TypedDict):
    host: str
    port: int
    semester_id: int
    think_s: list[float]  # [low, high]: uniform think time before each registration
    seed: int
    max_seconds: float  # the whole run's bound
    # Refusals to wait out like a 503 (their Retry-After, else 1 s) and send again: none by
    # default; the waiting room's variant (issue 17) adds e.g. NOT_YET_ADMITTED.
    retry_codes: NotRequired[list[str]]
    # The waiting room is on (issue 17): take a place, wait to be admitted, register with its token.
    room: NotRequired[bool]
    students: list[StudentPlan]


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str, extra: str = "") -> Answer:
        """Send one request and read its answer. A kept-alive connection that the server
        closed while it was idle (keep_alive_timeout_seconds) fails before any byte of an
        answer: then, like any HTTP client's pool, reconnect and send once more."""
        data = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n{extra}"
            f"Content-Length: 0\r\n\r\n".encode()
        )
        for last_try in (False, True):
            reused = self.writer is not None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(data)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
                if reused and not last_try and not getattr(error, "partial", b""):
                    self.close()
                    continue
                raise
            return await self._answer(head)
        raise AssertionError("unreachable")

    async def _answer(self, head: bytes) -> Answer:
        assert self.reader is not None
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._chunked()
        else:
            body = b""
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Recorder:
    lines: list[str] = field(default_factory=list)

    def add(self, *values: object) -> None:
        self.lines.append("\t".join(str(v) for v in values))


@dataclass
class StudentSession:
    """One student's connection, token and record of attempts."""

    number: int
    token: str
    connection: Connection
    recorder: Recorder
    retry_codes: frozenset[str] = frozenset()
    extra_headers: str = ""  # "X-Admission-Token: ...\r\n" once the student has a place
    last: Answer | None = None  # the last answer of the last call

    async def call(
        self, kind: str, method: str, path: str, *, course: int = 0, wish: int = -1, choice: int = 0
    ) -> tuple[int, str, int]:
        """One request, sent again after a 503 or a refusal in `retry_codes` (honouring
        Retry-After) or a lost connection; every attempt is recorded. Returns (status, code,
        position) of the last."""
        first_send = 0
        status, code, position = 0, "", 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            send = _now_us()
            first_send = first_send or send
            retry_after = 1.0
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    answer = await self.connection.request(method, path, self.token, self.extra_headers)
                self.last = answer
                status, code, position = answer.status, "", 0
                if kind == "register" or status != 200:
                    body = answer.json()
                    if isinstance(body, dict):
                        code = str(body.get("status") or body.get("code") or "")
                        position = int(body.get("reserve_position") or 0)
                elif kind in ("place", "wait"):
                    body = answer.json()
                    if isinstance(body, dict):
                        position = int(body.get("position") or 0)
                        code = "ADMITTED" if body.get("admitted") else "WAITING"
                if status == 503:
                    # Past MAX_CONNECTIONS_PER_WORKER the answer closes the connection; the gates' do not.
                    position = 1 if answer.headers.get(b"connection", b"").lower() == b"close" else 0
                with contextlib.suppress(ValueError):
                    retry_after = float(answer.headers.get(b"retry-after", b"1"))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as error:
                self.connection.close()
                status, code, position = 0, type(error).__name__, 0
            self.recorder.add(
                self.number, kind, course, wish, choice, attempt, first_send, send, _now_us(), status, code, position
            )
            if status not in (0, 503) and code not in self.retry_codes:
                break
            if attempt < MAX_ATTEMPTS:
                # Retry-After, and up to a tenth more: a real population's timers are never in step.
                await asyncio.sleep(retry_after * (1 + random.random() / 10))
        return status, code, position


async def _student(number: int, plan: Plan, student: StudentPlan, recorder: Recorder, rng: random.Random) -> None:
    session = StudentSession(
        number,
        student["token"],
        Connection(plan["host"], plan["port"]),
        recorder,
        frozenset(plan.get("retry_codes", ())),
    )
    semester = plan["semester_id"]
    low, high = plan["think_s"]
    try:
        if plan.get("room"):
            await _wait_for_admission(session, semester)
        await session.call("status", "GET", f"/semesters/{semester}/my-status")
        await session.call("courses", "GET", f"/semesters/{semester}/courses")
        for wish_number, choices in enumerate(student["wishes"]):
            for choice, course in enumerate(choices):
                await asyncio.sleep(rng.uniform(low, high))
                status, code, _ = await session.call(
                    "register", "POST", f"/courses/{course}/register", course=course, wish=wish_number, choice=choice
                )
                if not (status == 409 and code == "COURSE_FULL"):
                    break  # a place (or an error): on to the next wish
        await session.call("my_courses", "GET", f"/semesters/{semester}/my-courses")
    finally:
        session.connection.close()


async def _wait_for_admission(session: StudentSession, semester: int) -> None:
    """Take a place; until it is admitted, wait what Retry-After says and ask again."""
    status, code, _ = await session.call("place", "POST", f"/semesters/{semester}/queue")
    for _ in range(MAX_WAITS):
        answer = session.last
        if status != 200 or answer is None:
            return  # recorded; the registrations will say the rest
        body = answer.json()
        if isinstance(body, dict) and body.get("admission_token"):
            session.extra_headers = f"X-Admission-Token: {body['admission_token']}\r\n"
        if code == "ADMITTED":
            return
        retry_after = 1.0
        with contextlib.suppress(ValueError):
            retry_after = float(answer.headers.get(b"retry-after", b"1"))
        await asyncio.sleep(retry_after * (1 + random.random() / 10))
        status, code, _ = await session.call("wait", "GET", f"/semesters/{semester}/queue/me")


class LoopLateness:
    """How late this generator's own event loop runs a timer, the worst of each second: when it
    falls behind, every latency it measures includes its own delay, not the server's."""

    INTERVAL_S = 0.02

    def __init__(self, t0_us: int) -> None:
        self.t0_us = t0_us
        self.worst_ms: list[float] = []

    async def watch(self) -> None:
        while True:
            due = _now_us() + int(self.INTERVAL_S * 1e6)
            await asyncio.sleep(self.INTERVAL_S)
            now = _now_us()
            second = max(0, (now - self.t0_us) // 1_000_000)
            while len(self.worst_ms) <= second:
                self.worst_ms.append(0.0)
            self.worst_ms[second] = max(self.worst_ms[second], round((now - due) / 1000, 1))


async def run(plan: Plan, out: Path) -> None:
    recorder = Recorder()
    order = sorted(range(len(plan["students"])), key=lambda n: plan["students"][n]["arrival_s"])
    loop = asyncio.get_running_loop()
    t0 = _now_us() + 300_000  # the opening: a moment after start-up
    lateness = LoopLateness(t0)
    watcher = loop.create_task(lateness.watch())
    tasks = []
    for number in order:
        student = plan["students"][number]
        delay = (t0 + student["arrival_s"] * 1e6 - _now_us()) / 1e6
        if delay > 0:
            await asyncio.sleep(delay)
        rng = random.Random(f"think:{plan['seed']}:{number}")
        tasks.append(loop.create_task(_student(number, plan, student, recorder, rng)))
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, plan["max_seconds"] - (_now_us() - t0) / 1e6))
    watcher.cancel()
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            print(f"a student failed: {task.exception()!r}", file=sys.stderr)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    header = f"# t0 {t0}\n# unfinished {len(pending)}\n# lateness_ms {json.dumps(lateness.worst_ms)}\n"
    footer = f"# cpu {usage.ru_utime + usage.ru_stime:.3f}\n"
    out.write_text(header + "\n".join(recorder.lines) + "\n" + footer)


def main() -> int:
    plan: Plan = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(plan, out))
    else:
        uvloop.run(run(plan, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
