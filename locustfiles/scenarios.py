"""The five kinds of student in a registration rush.

Run as it is (`locust -f locustfiles/scenarios.py -u 30 -r 5 -t 1m`), or through a
preset (`locust -f locustfiles/spike.py`, or `make load PRESET=spike`), which adds
a load shape. Weights come from --mix (or the preset's mix); see docs/load-testing.md.

Every user logs in once as its own seeded student (STU10000...), finds the open
semester, reads its record (/auth/me), its courses and its own registrations,
then keeps to its scenario. Students register with the rules in mind, as real
ones do (`RegistrationUser.can_take`): the peak mix makes no deliberate conflicts.
A seeded student with a hold, or one without a course's prerequisites, still meets
a refusal now and then (the course list does not say everything): those are
expected outcomes, counted by code.
"""

import random

from locust import between

import _verdict  # noqa: F401  (registers the end-of-run verdict)
from _client import RegistrationUser, step

# How many of the smallest courses DropPromotionUser churns through.
SMALL_COURSES = 3


class StudentUser(RegistrationUser):
    """Browses only: the semesters, the semester's courses, its own courses."""

    @step(1)
    def semesters(self) -> None:
        self.list_semesters()

    @step(1)
    def semester(self) -> None:
        self.view_semester()

    @step(4)
    def courses(self) -> None:
        self.list_courses()

    @step(2)
    def course(self) -> None:
        if (course_id := self.random_course()) is not None:
            self.view_course(course_id)

    @step(3)
    def my_courses(self) -> None:
        self.list_my_courses()


class PeakLoadUser(RegistrationUser):
    """The rush itself: browses, looks at a course, registers for random courses it can
    take (no overlap with what it holds, prerequisites met, within its limit), now and
    then swaps one for another or drops one."""

    @step(2)
    def courses(self) -> None:
        self.list_courses()

    @step(2)
    def course(self) -> None:
        if (course_id := self.random_course()) is not None:
            self.view_course(course_id)

    @step(4)
    def register_for_a_course(self) -> None:
        if not self.may_register:
            self.list_my_courses()
            return
        if candidates := self.choices():
            self.register(random.choice(candidates))

    @step(1)
    def my_courses(self) -> None:
        self.list_my_courses()

    @step(1)
    def swap_a_course(self) -> None:
        enrolled = [course_id for course_id, status in self.mine.items() if status == "ENROLLED"]
        if not enrolled or not self.may_register:
            return
        old = random.choice(enrolled)
        # Only for a course with a free seat, as far as the list shows: a swap never queues.
        candidates = [c for c in self.choices(instead_of=old) if self.courses[c].get("available_seats", 1) > 0]
        if candidates:
            self.swap(random.choice(candidates), old)

    @step(1)
    def drop_a_course(self) -> None:
        if self.mine:
            self.drop(random.choice(list(self.mine)))


class RaceUser(RegistrationUser):
    """Every RaceUser races for the same course: the one with the smallest capacity.

    The course fills at once and its reserve list behind it; everyone else gets
    COURSE_FULL and tries again. A winner holds its place for a few turns, then
    drops it, so the race goes on and enrolled drops promote the first in line.
    """

    wait_time = between(0.2, 1.0)
    turns_to_hold = 0

    @step()
    def race(self) -> None:
        target = self.race_course_id
        if target is None:
            return
        if target not in self.mine:
            if not self.may_register or not self.can_take(target):
                self.view_course(target)  # a spectator of the race
            elif self.register(target) in ("ENROLLED", "RESERVED"):
                self.turns_to_hold = random.randint(3, 8)
        elif self.turns_to_hold > 0:
            self.turns_to_hold -= 1
            self.view_course(target)
        else:
            self.drop(target)


class ReserveQueueUser(RegistrationUser):
    """Fills one small course past its capacity into its reserve list, and waits in line.

    The target is the second-smallest course. A student in line watches its
    position; now and then one gives up its place and queues again at the tail,
    which closes the gap it leaves. An enrolled student keeps its seat.
    """

    @step()
    def queue(self) -> None:
        target = self.queue_course_id
        if target is None:
            return
        status = self.mine.get(target)
        if status is None and (not self.may_register or not self.can_take(target)):
            self.view_course(target)
        elif status is None:
            self.register(target)
        elif status == "RESERVED" and random.random() < 0.15:
            self.drop(target)
        elif status == "RESERVED":
            self.list_my_courses()  # has my position moved? was I promoted?
        else:
            self.view_course(target)


class DropPromotionUser(RegistrationUser):
    """Drives promotions: takes places in the smallest courses and drops every seat it gets.

    Dropping an enrolled place in a course with a reserve list promotes position 1
    at once. A student in line waits (watching its courses) until it is promoted,
    then drops that seat too.
    """

    @step()
    def churn(self) -> None:
        targets = self.by_size[:SMALL_COURSES]
        enrolled = [c for c in targets if self.mine.get(c) == "ENROLLED"]
        if enrolled:
            self.drop(random.choice(enrolled))
        elif any(self.mine.get(c) == "RESERVED" for c in targets):
            self.list_my_courses()
        elif self.may_register and (free := self.choices(targets)):
            self.register(random.choice(free))
