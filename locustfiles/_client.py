"""The API as a student's browser tab sees it: `RegistrationUser`, base of every scenario.

Every request is judged: 200 with a body that keeps the API's contract, and the
refusals a real student meets in a rush (EXPECTED_REFUSALS: a full course, a
missing prerequisite, a hold, ...) with their own status, are successes;
anything else (5xx, 401, 404, 422, 429, a timeout, a body that breaks the
contract) is a failure. Register, drop and swap answers are counted as
registration outcomes, and every refusal by its code.

It behaves as a real client should (README, "The waiting room"): once logged in
it asks for its place in the semester's waiting room and, until the place is
admitted, waits as long as `Retry-After` says before asking again; it sends its
admission token with every register, drop and swap. A 503 SERVICE_BUSY (the
server shedding load) is waited out for its `Retry-After` and counted by its
code, like a 409 NOT_YET_ADMITTED (after which it asks for its place again).

A student chooses courses as a real one would: none it already holds, none
whose meetings overlap one it holds, none whose prerequisites it has not
completed, none past its credit limit (as far as /auth/me and the course list
tell it). A refusal teaches it the same: after a hold it stops registering,
before its appointment it waits for it.

The leading underscore keeps Locust's loader from reading this file as a locustfile.
"""

import functools
import random
import time
from typing import Any, NamedTuple

from locust import FastHttpUser, between, task

from _common import LOGIN, OUTCOMES, REFUSALS, next_student_number, option

# The refusals that are part of a rush, with the status each comes with; `call()`
# accepts a code only with its own status. tests/core/test_error_codes.py checks
# every code and status here against app/core/errors.py, and every `allowed=` below against this.
EXPECTED_REFUSALS = {
    "COURSE_FULL": 409,
    "ALREADY_REGISTERED": 409,
    "COURSE_CANCELLED": 409,
    "APPOINTMENT_NOT_STARTED": 409,
    "REGISTRATION_HOLD": 403,
    "PREREQUISITE_MISSING": 409,
    "SCHEDULE_CONFLICT": 409,
    "CREDIT_LIMIT_EXCEEDED": 409,
    "SWAP_NEEDS_SEAT": 409,
    # The waiting room and admission control: wait for Retry-After, then go on
    # (locustfiles/opening.py retries past saturation the same way).
    "NOT_YET_ADMITTED": 409,
    "SERVICE_BUSY": 503,
}
# Refusals every request may meet and waits out (Retry-After) before its next step.
WAIT_AND_RETRY = ("SERVICE_BUSY",)
# The longest a client waits on one Retry-After (the server never says more than 30 s).
MAX_WAIT_SECONDS = 30.0
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


class Reply(NamedTuple):
    ok: bool  # counted as a success
    status: int  # 0 when no response came back
    body: Any
    code: str | None  # the error code of a JSON error body
    retry_after: float | None = None  # seconds, when the answer said Retry-After


def _retry_after(response) -> float | None:
    try:
        return min(MAX_WAIT_SECONDS, max(0.0, float(response.headers.get("Retry-After"))))
    except (TypeError, ValueError, AttributeError):
        return None


def _check_place(body) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("admitted"), bool) or not body.get("admission_token"):
        return "a place says whether it is admitted and carries its admission token"
    if body["admitted"] != (body.get("position") == 0):
        return f"admitted {body['admitted']} at position {body.get('position')}"
    return None


def _check_token(body) -> str | None:
    if not isinstance(body, dict) or not body.get("access_token"):
        return "no access_token in the body"
    return None


def _check_list(body) -> str | None:
    return None if isinstance(body, list) else "the body is not a list"


_COURSE_FIELDS = {"id", "max_capacity", "reserve_limit", "enrolled_count", "reserved_count", "available_seats"}


def _check_course(course) -> str | None:
    """What a client can verify about one course from its counters."""
    if not isinstance(course, dict) or not course.keys() >= _COURSE_FIELDS:
        return "a course lacks its counters"
    cid, capacity, enrolled = course["id"], course["max_capacity"], course["enrolled_count"]
    if enrolled > capacity:
        return f"course {cid} shows {enrolled} enrolled, capacity {capacity}"
    if course["reserved_count"] > course["reserve_limit"]:
        return f"course {cid} shows {course['reserved_count']} reserved, limit {course['reserve_limit']}"
    if course["reserved_count"] and enrolled < capacity:
        return f"course {cid} shows a reserve list while seats are free"
    if course["available_seats"] != capacity - enrolled:
        return f"course {cid} shows available_seats {course['available_seats']}"
    return None


def _check_courses(body) -> str | None:
    if not isinstance(body, list):
        return "the body is not a list"
    return next(filter(None, map(_check_course, body)), None)


def _check_position(row) -> str | None:
    if not isinstance(row, dict):
        return "the body is not an object"
    status, position = row.get("status"), row.get("reserve_position")
    if status == "ENROLLED" and position is None:
        return None
    if status == "RESERVED" and isinstance(position, int) and position >= 1:
        return None
    return f"status {status} with reserve_position {position}"


def _check_my_courses(body) -> str | None:
    if not isinstance(body, list):
        return "the body is not a list"
    return next(filter(None, map(_check_position, body)), None)


def _check_drop(body) -> str | None:
    if not isinstance(body, dict) or body.get("dropped_status") not in ("ENROLLED", "RESERVED"):
        return "no dropped_status in the body"
    return None


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _slots(course: dict) -> list[tuple[str, int, int]]:
    """A course's weekly meetings as (day, start, end) minutes; none when the body has no meetings."""
    slots = []
    for meeting in course.get("meetings") or ():
        try:
            slots.append((meeting["day"], _minutes(meeting["start"]), _minutes(meeting["end"])))
        except (KeyError, TypeError, ValueError):
            continue
    return slots


def overlaps(first: dict, second: dict) -> bool:
    """The server's rule: the same day and intervals that overlap (touching ends do not)."""
    return any(
        a_day == b_day and a_start < b_end and b_start < a_end
        for a_day, a_start, a_end in _slots(first)
        for b_day, b_start, b_end in _slots(second)
    )


def _check_swap(body) -> str | None:
    if not isinstance(body, dict) or body.get("status") != "ENROLLED" or not body.get("dropped_course_id"):
        return "a swap gives a seat and names the dropped course"
    return None


def _json(response) -> Any:
    try:
        return response.json()
    except Exception:
        return None


def step(weight: int = 1):
    """A Locust task that runs once the user is logged in and knows its semester.

    Until then every turn retries the log-in (each failed try counts as a failure).
    """

    def decorate(function):
        @functools.wraps(function)
        def run(user):
            if user.ensure_ready():
                function(user)

        return task(weight)(run)

    return decorate


class RegistrationUser(FastHttpUser):
    """A student with a browser tab: logs in once, then browses and registers."""

    abstract = True
    wait_time = between(0.5, 2.0)

    def __init__(self, environment):
        # Read per user (not per class): on a worker the options arrive with the first spawn message.
        self.network_timeout = self.connection_timeout = float(option(environment, "request_timeout", 30.0))
        super().__init__(environment)
        self.student_number = ""
        self.token: str | None = None
        self.renew_token_at = 0.0
        self.semester_id: int | None = None
        self.courses: dict[int, dict] = {}
        self.by_size: list[int] = []  # course ids, smallest capacity first
        self.mine: dict[int, str] = {}  # course id -> ENROLLED / RESERVED, as far as we know
        # What the student knows of its own record (from /auth/me, when it says, and from refusals).
        self.completed: set[str] | None = None  # None: unknown, try anything
        self.max_credits: int | None = None
        self.on_hold = False
        self.wait_until = 0.0  # monotonic time of the appointment, after APPOINTMENT_NOT_STARTED
        self.refused: set[int] = set()  # courses a rule refused that will not change this run
        self.admission_token: str | None = None  # our admitted place in the semester's waiting room

    # -- set-up

    def on_start(self) -> None:
        self.student_number = next_student_number(self.environment)
        self.ensure_ready()

    def ensure_ready(self) -> bool:
        """Log in (again only shortly before the token expires); find the semester once."""
        needs_token = self.token is None or time.monotonic() >= self.renew_token_at
        if needs_token and not self.login():
            return False
        if self.semester_id is None:
            if not self.find_semester():
                return False
            self.read_me()
            self.list_courses()
            self.list_my_courses()
        # The waiting room's admitted place (asked for again after NOT_YET_ADMITTED).
        return self.admission_token is not None or self.wait_for_turn()

    def wait_for_turn(self) -> bool:
        """The waiting room: ask for a place (the same one every time), then wait as told
        (Retry-After) until it is admitted. With the room off it is admitted at once."""
        path = f"/semesters/{self.semester_id}/queue"
        reply = self.call("POST", path, name="/semesters/{id}/queue", check=_check_place)
        while reply.ok and not reply.body["admitted"]:
            time.sleep(reply.retry_after or 1.0)
            # With the place's token the estimate costs the server no query.
            reply = self.call(
                "GET",
                path + "/me",
                name="/semesters/{id}/queue/me",
                check=_check_place,
                admission_token=reply.body["admission_token"],
            )
        if reply.ok:
            self.admission_token = reply.body["admission_token"]
        return reply.ok

    @property
    def race_course_id(self) -> int | None:
        """The course that really fills: the smallest capacity (then the lowest id)."""
        return self.by_size[0] if self.by_size else None

    @property
    def queue_course_id(self) -> int | None:
        """The next smallest: small enough for a crowd to fill it and queue behind it."""
        return self.by_size[1] if len(self.by_size) > 1 else self.race_course_id

    # -- one request, judged

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        allowed: tuple[str, ...] = (),
        check=None,
        json: Any = None,
        authorized: bool = True,
        admission_token: str | None = None,
    ) -> Reply:
        """Send one request and mark it: 200 with a body that passes `check`, or a
        JSON error whose code is in `allowed` with that code's status
        (EXPECTED_REFUSALS), is a success; anything else fails. The admission token sent is
        `admission_token` (a place still waiting), else the admitted one, if any."""
        headers = {"Authorization": f"Bearer {self.token}"} if authorized else None
        if headers is not None and (admission_token or self.admission_token):
            headers["X-Admission-Token"] = admission_token or self.admission_token
        with self.client.request(method, path, name=name, json=json, headers=headers, catch_response=True) as response:
            status = response.status_code or 0
            body = _json(response)
            code = body.get("code") if isinstance(body, dict) else None
            retry_after = _retry_after(response)
            if status == 200:
                problem = check(body) if check else None
                problem = problem and f"200 but {problem}"
            elif (code in allowed or code in WAIT_AND_RETRY) and status == EXPECTED_REFUSALS.get(code):
                problem = None
                REFUSALS[code] += 1
            elif status:
                problem = f"{status} {code}" if code else str(status)
            else:
                problem = f"no response ({_error_name(response)})"
            if problem:
                response.failure(problem)
            else:
                response.success()
        if status == 401:
            self.token = None  # log in again on the next turn
        if code == "NOT_YET_ADMITTED":
            self.admission_token = None  # ask for the place again on the next turn
        if code in ("NOT_YET_ADMITTED", *WAIT_AND_RETRY) and status == EXPECTED_REFUSALS.get(code):
            time.sleep(retry_after or 1.0)  # as the server asks; a greenlet's sleep under Locust
        return Reply(problem is None, status, body, code, retry_after)

    def login(self) -> bool:
        reply = self.call(
            "POST",
            LOGIN,
            name=LOGIN,
            authorized=False,
            check=_check_token,
            json={
                "student_number": self.student_number,
                "password": option(self.environment, "student_password", "test123"),
            },
        )
        if not reply.ok:
            self.token = None
            return False
        self.token = reply.body["access_token"]
        lifetime = float(reply.body.get("expires_in") or 3600)
        self.renew_token_at = time.monotonic() + max(lifetime - 60, lifetime / 2)
        return True

    def find_semester(self) -> bool:
        """--semester-id if given (it must be open), else the open semester with the smallest id."""
        wanted = int(option(self.environment, "semester_id", 0))
        chosen: list[int] = []

        def choose(body) -> str | None:
            semesters = [body] if wanted else body
            if not isinstance(semesters, list) or not all(isinstance(s, dict) for s in semesters):
                return "the body is not a semester list"
            open_ids = sorted(s["id"] for s in semesters if s.get("is_registration_open"))
            if not open_ids:
                return f"semester {wanted} is not open for registration" if wanted else "no semester is open"
            chosen.append(open_ids[0])
            return None

        if wanted:
            self.call("GET", f"/semesters/{wanted}", name="/semesters/{id}", check=choose)
        else:
            self.call("GET", "/semesters/", name="/semesters/", check=choose)
        if chosen:
            self.semester_id = chosen[0]
        return bool(chosen)

    def read_me(self) -> None:
        """The student's transcript and limit, as /auth/me tells them (older servers do not)."""
        reply = self.call("GET", "/auth/me", name="/auth/me")
        if reply.ok and isinstance(reply.body, dict):
            if isinstance(reply.body.get("completed_courses"), list):
                self.completed = set(reply.body["completed_courses"])
            if isinstance(reply.body.get("max_credits"), int):
                self.max_credits = reply.body["max_credits"]
            # Holds are shown too, but like many a real student this one only notices
            # its hold when registering is refused (one REGISTRATION_HOLD, then it stops).

    # -- browsing

    def list_semesters(self) -> None:
        self.call("GET", "/semesters/", name="/semesters/", check=_check_list)

    def view_semester(self) -> None:
        self.call("GET", f"/semesters/{self.semester_id}", name="/semesters/{id}")

    def list_courses(self) -> None:
        reply = self.call(
            "GET", f"/semesters/{self.semester_id}/courses", name="/semesters/{id}/courses", check=_check_courses
        )
        if reply.ok and reply.body:
            self.courses = {course["id"]: course for course in reply.body}
            self.by_size = [c["id"] for c in sorted(reply.body, key=lambda c: (c["max_capacity"], c["id"]))]

    def view_course(self, course_id: int) -> None:
        self.call("GET", f"/courses/{course_id}", name="/courses/{id}", check=_check_course)

    def list_my_courses(self) -> None:
        reply = self.call(
            "GET",
            f"/semesters/{self.semester_id}/my-courses",
            name="/semesters/{id}/my-courses",
            check=_check_my_courses,
        )
        if reply.ok:
            self.mine = {row["course_id"]: row["status"] for row in reply.body}

    def random_course(self) -> int | None:
        return random.choice(list(self.courses)) if self.courses else None

    # -- choosing courses as a real student would

    @property
    def may_register(self) -> bool:
        """False while a hold stands or before the appointment: a real student waits."""
        return not self.on_hold and time.monotonic() >= self.wait_until

    def credits_held(self) -> int:
        return sum(self.courses.get(c, {}).get("credits") or 0 for c in self.mine)

    def can_take(self, course_id: int, *, instead_of: int | None = None) -> bool:
        """Not held, not refused for good, no overlap with a held course, prerequisites
        completed, within the limit: as far as the student knows (unknown: try)."""
        course = self.courses.get(course_id)
        if course is None or course_id in self.mine or course_id in self.refused or course.get("is_cancelled"):
            return False
        held = [self.courses.get(c, {}) for c in self.mine if c != instead_of]
        if any(overlaps(course, other) for other in held):
            return False
        if self.completed is not None and not set(course.get("prerequisites") or ()) <= self.completed:
            return False
        if self.max_credits is not None:
            credits = sum(other.get("credits") or 0 for other in held)
            if credits + (course.get("credits") or 0) > self.max_credits:
                return False
        return True

    def choices(self, course_ids=None, *, instead_of: int | None = None) -> list[int]:
        pool = self.courses if course_ids is None else course_ids
        return [course_id for course_id in pool if self.can_take(course_id, instead_of=instead_of)]

    def learn(self, course_id: int, reply: Reply) -> None:
        """What a refusal teaches the student about its own record."""
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.code == "REGISTRATION_HOLD":
            self.on_hold = True
        elif reply.code == "APPOINTMENT_NOT_STARTED":
            self.wait_until = time.monotonic() + 30.0  # look again in a while
        elif reply.code in ("PREREQUISITE_MISSING", "COURSE_CANCELLED"):
            self.refused.add(course_id)
        elif reply.code == "CREDIT_LIMIT_EXCEEDED" and isinstance(body.get("max_credits"), int):
            self.max_credits = body["max_credits"]
        elif reply.code == "SCHEDULE_CONFLICT":
            self.list_my_courses()  # our view of what we hold is behind

    # -- registering

    def _name(self, course_id: int, action: str) -> str:
        # The race course gets its own line in the statistics: it is the hot row.
        return f"/courses/{{race}}/{action}" if course_id == self.race_course_id else f"/courses/{{id}}/{action}"

    def register(self, course_id: int) -> str | None:
        """ENROLLED, RESERVED, FULL, ALREADY_REGISTERED, or REFUSED (a rule, by its code
        in REFUSALS); WAITED when told to wait (not admitted yet, or the server busy); None
        on a failure."""
        reply = self.call(
            "POST",
            f"/courses/{course_id}/register",
            name=self._name(course_id, "register"),
            allowed=(
                "COURSE_FULL",
                "ALREADY_REGISTERED",
                "COURSE_CANCELLED",
                "APPOINTMENT_NOT_STARTED",
                "REGISTRATION_HOLD",
                "PREREQUISITE_MISSING",
                "SCHEDULE_CONFLICT",
                "CREDIT_LIMIT_EXCEEDED",
                "NOT_YET_ADMITTED",
            ),
            check=_check_position,
        )
        if not reply.ok:
            return None
        if reply.code in ("NOT_YET_ADMITTED", *WAIT_AND_RETRY):
            OUTCOMES["WAITED"] += 1  # waited out its Retry-After (the code is in REFUSALS too)
            return "WAITED"
        if reply.status == 200:
            outcome = reply.body["status"]
            self.mine[course_id] = outcome
        elif reply.code == "COURSE_FULL":
            outcome = "FULL"
        elif reply.code == "ALREADY_REGISTERED":
            outcome = "ALREADY_REGISTERED"
        else:
            outcome = "REFUSED"
            self.learn(course_id, reply)
        OUTCOMES[outcome] += 1
        if outcome == "ALREADY_REGISTERED":
            # Another simulated user shares this student (past --students): look again.
            self.list_my_courses()
        return outcome

    def drop(self, course_id: int) -> None:
        reply = self.call(
            "POST",
            f"/courses/{course_id}/drop",
            name=self._name(course_id, "drop"),
            allowed=("NOT_YET_ADMITTED",),
            check=_check_drop,
        )
        if reply.code in ("NOT_YET_ADMITTED", *WAIT_AND_RETRY):
            return  # still registered: drop it once admitted
        self.mine.pop(course_id, None)
        if reply.ok:
            OUTCOMES["DROPPED"] += 1
            if reply.body.get("promoted_student_id"):
                OUTCOMES["PROMOTED"] += 1

    def swap(self, course_id: int, drop_course_id: int) -> bool:
        """Trade a held course for a seat in another, all or nothing; True when swapped."""
        reply = self.call(
            "POST",
            f"/courses/{course_id}/swap",
            name="/courses/{id}/swap",
            json={"drop_course_id": drop_course_id},
            allowed=(
                "COURSE_FULL",
                "ALREADY_REGISTERED",
                "SWAP_NEEDS_SEAT",
                "COURSE_CANCELLED",
                "APPOINTMENT_NOT_STARTED",
                "REGISTRATION_HOLD",
                "PREREQUISITE_MISSING",
                "SCHEDULE_CONFLICT",
                "CREDIT_LIMIT_EXCEEDED",
                "NOT_YET_ADMITTED",
            ),
            check=_check_swap,
        )
        if not reply.ok or reply.code in ("NOT_YET_ADMITTED", *WAIT_AND_RETRY):
            return False
        if reply.status != 200:
            OUTCOMES["SWAP_REFUSED"] += 1
            if reply.code != "SWAP_NEEDS_SEAT":
                self.learn(course_id, reply)
            return False
        OUTCOMES["SWAPPED"] += 1
        if reply.body.get("promoted_student_id"):
            OUTCOMES["PROMOTED"] += 1
        self.mine.pop(drop_course_id, None)
        self.mine[course_id] = "ENROLLED"
        return True


def _error_name(response) -> str:
    """What went wrong without a response: a timeout, a refused connection, ..."""
    error = getattr(response, "error", None)
    error = getattr(error, "original", None) or error  # geventhttpclient wraps it in RetriesExceeded
    if error is None:
        return "unknown"
    if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
        return "timeout"
    return type(error).__name__
