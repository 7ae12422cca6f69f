"""Preset `opening`: registration day, the opening minute of a whole university (issue 14).

Half of the students arrive in the first 5 seconds, the rest within the first minute
(the shape adds users in steps of 5 s); the second minute lets the last ones finish.
Every student (`OpeningUser`) logs in, reads its status and the course list, then
registers its five wishes in order with a short think time, tries up to two
alternatives after each COURSE_FULL, reads "my courses", and is done. The wishes
come from the benchmark's own model (`_opening_model.py`: Zipf popularity, no two
wishes overlapping, alternatives in the same time slot), so a semester seeded like
the benchmark's (course codes OPN1..OPN200) gets the same wishes for the same
student; any other semester gets Zipf over its courses in id order, and the rules
the course list shows (overlaps, prerequisites, the credit limit) are respected.

A 503 SERVICE_BUSY is retried after its Retry-After, as a real client would. The
verdict adds the share of wishes met and the fairness inversions: per course,
pairs where a request sent later got a better outcome (enrolled over reserved over
full, an earlier reserve position) than one sent earlier. Workers send their
observations to the master; on several machines their clocks must agree (NTP) for
the fairness figure to mean anything.

    make load PRESET=opening USERS=2000 PROCESSES=2
    locust -f locustfiles/opening.py --headless -u 500 -t 2m --zipf 1.1

Logins are part of this run (each user logs in as it arrives) and are reported on
their own line, not gated: the benchmark issues its tokens before the window.
"""

import functools
import random
import time
from collections import Counter

import gevent
from locust import constant, events, task

import _verdict  # noqa: F401  (registers the end-of-run verdict)
from _client import RegistrationUser
from _common import OUTCOMES, VERDICT_EXTRAS, PresetShape, is_coordinator, next_student_number, option
from _opening_model import DEFAULT_SEED, DEFAULT_ZIPF, Catalogue, fairness, outcome_rank
from _presets import PRESETS

MAX_BUSY_RETRIES = 20
THINK_S = (0.2, 0.6)

# (course id, wall-clock time the request was sent, outcome rank) per answered register;
# on a worker, what was seen since the last report to the master.
OBSERVED: list[tuple[int, float, int]] = []
WISHES: Counter = Counter()


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    parser.add_argument("--zipf", type=float, default=DEFAULT_ZIPF, help="Exponent of course popularity (1.1).")
    parser.add_argument(
        "--opening-seed", type=int, default=DEFAULT_SEED, help="Seed of the catalogue and the wish lists."
    )


@functools.lru_cache(maxsize=4)
def _catalogue(courses: int, zipf: float, seed: int) -> Catalogue:
    return Catalogue(courses, zipf=zipf, seed=seed)


class OpeningUser(RegistrationUser):
    """One student on registration day: arrives once, registers its wishes, then is done."""

    wait_time = constant(1)

    def on_start(self) -> None:
        self.student_number = next_student_number(self.environment)
        self.done = False
        if self.login() and self.find_semester():
            self.call("GET", f"/semesters/{self.semester_id}/my-status", name="/semesters/{id}/my-status")
            self.list_courses()

    def wish_list(self) -> list[list[int]]:
        """[course id, alternatives...] per wish."""
        prefix = option(self.environment, "student_prefix", "STU")
        first = int(option(self.environment, "first_student", 10000))
        serial = int(self.student_number.removeprefix(prefix)) - first
        zipf = float(option(self.environment, "zipf", DEFAULT_ZIPF))
        seed = int(option(self.environment, "opening_seed", DEFAULT_SEED))
        by_code = {course.get("code"): course_id for course_id, course in self.courses.items()}
        if len(self.courses) >= 25:
            catalogue = _catalogue(len(self.courses), zipf, seed)
            if all(spec.code in by_code for spec in catalogue.courses):
                ids = [by_code[spec.code] for spec in catalogue.courses]
            else:
                ids = sorted(self.courses)
            return [[ids[wish.course], *(ids[c] for c in wish.alternatives)] for wish in catalogue.wish_list(serial)]
        # A small semester: Zipf over its courses in id order, alternatives from the rest.
        ids = sorted(self.courses)
        rng = random.Random(f"wishes:{seed}:{serial}")
        weights = [1 / (rank + 1) ** zipf for rank in range(len(ids))]
        order = []
        pool = list(range(len(ids)))
        while pool:
            pick = rng.choices(pool, [weights[i] for i in pool])[0]
            order.append(ids[pick])
            pool.remove(pick)
        return [[order[n], *order[5 + 2 * n : 7 + 2 * n]] for n in range(min(5, len(order)))]

    def register_patiently(self, course_id: int) -> tuple[int, str | None]:
        """Register; after 503 SERVICE_BUSY wait Retry-After and try again. (status, code or status)."""
        for _ in range(MAX_BUSY_RETRIES):
            sent = time.time()
            reply = self.call(
                "POST",
                f"/courses/{course_id}/register",
                name="/courses/{id}/register",
                allowed=("COURSE_FULL", "SERVICE_BUSY"),
            )
            if reply.status == 503 and reply.code == "SERVICE_BUSY":
                WISHES["busy_retries"] += 1  # `call` has already waited its Retry-After
                continue
            body = reply.body if isinstance(reply.body, dict) else {}
            if reply.status == 200:
                OUTCOMES[body.get("status", "ENROLLED")] += 1
                self.mine[course_id] = body.get("status", "ENROLLED")
                OBSERVED.append((course_id, sent, outcome_rank(body.get("status", ""), body.get("reserve_position"))))
                return 200, body.get("status")
            if reply.code == "COURSE_FULL":
                OUTCOMES["FULL"] += 1
                OBSERVED.append((course_id, sent, outcome_rank("FULL")))
            elif reply.ok:
                OUTCOMES["REFUSED"] += 1
            return reply.status, reply.code
        return 503, "SERVICE_BUSY"

    @task
    def registration_day(self) -> None:
        if self.done or self.semester_id is None or not self.courses:
            return
        self.done = True
        WISHES["students"] += 1
        for number, choices in enumerate(self.wish_list()):
            WISHES["wishes"] += 1
            for choice, course_id in enumerate(choices):
                if not self.can_take(course_id):
                    continue
                gevent.sleep(random.uniform(*THINK_S))
                status, code = self.register_patiently(course_id)
                if status == 200:
                    WISHES["met"] += 1
                    if number == 0 and choice == 0 and code == "ENROLLED":
                        WISHES["first_wish_enrolled"] += 1
                    break
                if code != "COURSE_FULL":
                    break
        self.list_my_courses()


# ---- the verdict's extras: collected on the master ----------------------------------------


@events.report_to_master.add_listener
def _send(client_id, data, **_kwargs) -> None:
    data["opening_observed"] = list(OBSERVED)
    data["opening_wishes"] = dict(WISHES)
    OBSERVED.clear()
    WISHES.clear()


@events.worker_report.add_listener
def _receive(client_id, data, **_kwargs) -> None:
    OBSERVED.extend(tuple(item) for item in data.get("opening_observed", ()))
    WISHES.update(data.get("opening_wishes", {}))


@events.test_start.add_listener
def _reset(environment, **_kwargs) -> None:
    OBSERVED.clear()
    WISHES.clear()


def _opening_verdict(environment) -> dict:
    if not is_coordinator(environment):
        return {}
    fair = fairness(OBSERVED)
    return {
        "opening": {
            "students": WISHES.get("students", 0),
            "wishes": WISHES.get("wishes", 0),
            "wishes_met": WISHES.get("met", 0),
            "first_wish_enrolled": WISHES.get("first_wish_enrolled", 0),
            "busy_retries": WISHES.get("busy_retries", 0),
            "registrations_observed": len(OBSERVED),
            "inversions": fair.inversions,
            "pairs": fair.pairs,
            "inversions_share": round(fair.share, 6),
            "courses": fair.courses,
        }
    }


VERDICT_EXTRAS.append(_opening_verdict)


class OpeningShape(PresetShape):
    preset = PRESETS["opening"]
