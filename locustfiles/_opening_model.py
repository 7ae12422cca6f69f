"""Registration day as plain data: the catalogue, the wish lists, and fairness.

One model for the two clients of the opening-minute scenario (issue 14): the
benchmark (`bench/opening.py`, `make bench ONLY=opening`) and the Locust preset
`opening` (`locustfiles/opening.py`). No Locust import and no I/O here, so
`bench/` imports it (as `bench/run_load.py` imports `_presets`) and the tests can
check it without gevent.

- The catalogue: `courses` courses (200 by default), capacities 20-300 with a
  reserve list of about 10 %, each meeting once a week in one of 25 time slots
  (5 days x 5 periods), so 8 courses share each slot. Popularity is Zipf over a
  fixed random ranking of the courses (exponent 1.1 by default).
- A wish list: 5 distinct courses drawn by popularity, in 5 different slots (so
  no two overlap), and for each wish up to 2 alternatives in the *same* slot,
  drawn by popularity among the slot's other courses. A student who finds a wish
  full tries its alternatives in order; since an alternative takes the wish's
  time slot, nothing a student asks for can overlap what it holds, and nothing
  repeats: the only refusal a student meets is COURSE_FULL. Credits are 2 or 3,
  so five courses stay within the default limit of 18.
- Fairness: per course, the register requests in the order they reached the
  server, and the share of pairs in which the later one got a better outcome
  (enrolled over reserved over full; an earlier reserve position over a later one).

Everything is drawn from a seed, so two runs (and the two clients) see the same
catalogue and the same wishes.
"""

import random
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

DAYS = ("MON", "TUE", "WED", "THU", "FRI")
PERIODS = (("08:00", "09:30"), ("10:00", "11:30"), ("12:00", "13:30"), ("14:00", "15:30"), ("16:00", "17:30"))
SLOTS = len(DAYS) * len(PERIODS)

DEFAULT_COURSES = 200
DEFAULT_ZIPF = 1.1
DEFAULT_SEED = 20261201
WISHES = 5
ALTERNATIVES = 2
MIN_CAPACITY, MAX_CAPACITY = 20, 300
RESERVE_SHARE = 0.1

# Outcome ranks for fairness: lower is better. A reserved place ranks by its position.
ENROLLED_RANK = 0
FULL_RANK = 1 << 30


@dataclass(frozen=True, slots=True)
class CourseSpec:
    index: int  # 0-based; the course's code is OPN<index + 1>
    code: str
    name: str
    credits: int
    capacity: int
    reserve_limit: int
    slot: int
    popularity_rank: int  # 0 is the most wanted

    @property
    def meetings(self) -> list[dict[str, str]]:
        day, (start, end) = DAYS[self.slot // len(PERIODS)], PERIODS[self.slot % len(PERIODS)]
        return [{"day": day, "start": start, "end": end}]

    @property
    def schedule(self) -> str:
        meeting = self.meetings[0]
        return f"{meeting['day']} {meeting['start']}-{meeting['end']}"


@dataclass(frozen=True, slots=True)
class Wish:
    course: int  # a course index
    alternatives: tuple[int, ...]  # course indexes, tried in order after COURSE_FULL


class Catalogue:
    """The courses of the opening and how popular each is."""

    def __init__(self, courses: int = DEFAULT_COURSES, *, zipf: float = DEFAULT_ZIPF, seed: int = DEFAULT_SEED) -> None:
        if courses < SLOTS:
            raise ValueError(f"at least {SLOTS} courses (one per time slot) are needed for a wish list")
        rng = random.Random(f"catalogue:{seed}")
        ranking = list(range(courses))
        rng.shuffle(ranking)  # ranking[rank] = course index
        rank_of = {course: rank for rank, course in enumerate(ranking)}
        self.zipf = zipf
        self.seed = seed
        self.courses: list[CourseSpec] = []
        for index in range(courses):
            capacity = rng.randint(MIN_CAPACITY, MAX_CAPACITY)
            self.courses.append(
                CourseSpec(
                    index=index,
                    code=f"OPN{index + 1}",
                    name=f"Opening course {index + 1}",
                    credits=2 if index % 4 == 3 else 3,
                    capacity=capacity,
                    reserve_limit=max(1, round(capacity * RESERVE_SHARE)),
                    slot=index % SLOTS,
                    popularity_rank=rank_of[index],
                )
            )
        self.weights = [1.0 / (course.popularity_rank + 1) ** zipf for course in self.courses]
        self._cumulative = list(accumulate(self.weights))
        self.by_slot: list[list[int]] = [[] for _ in range(SLOTS)]
        for course in self.courses:
            self.by_slot[course.slot].append(course.index)

    def __len__(self) -> int:
        return len(self.courses)

    @property
    def capacity(self) -> int:
        return sum(course.capacity for course in self.courses)

    def _draw(self, rng: random.Random) -> int:
        return bisect_left(self._cumulative, rng.random() * self._cumulative[-1])

    def _draw_among(self, rng: random.Random, candidates: Sequence[int]) -> int:
        weights = [self.weights[c] for c in candidates]
        return candidates[bisect_left(list(accumulate(weights)), rng.random() * sum(weights))]

    def wish_list(self, student: int, *, wishes: int = WISHES, alternatives: int = ALTERNATIVES) -> list[Wish]:
        """Student number `student`'s wishes, most wanted first (the order they are registered in)."""
        rng = random.Random(f"wishes:{self.seed}:{student}")
        chosen: list[int] = []
        taken_slots: set[int] = set()
        while len(chosen) < min(wishes, SLOTS):
            course = self._draw(rng)
            if self.courses[course].slot not in taken_slots:
                chosen.append(course)
                taken_slots.add(self.courses[course].slot)
        result = []
        for course in chosen:
            pool = [c for c in self.by_slot[self.courses[course].slot] if c != course]
            extra: list[int] = []
            while pool and len(extra) < alternatives:
                pick = self._draw_among(rng, pool)
                extra.append(pick)
                pool.remove(pick)
            result.append(Wish(course, tuple(extra)))
        return result


def opening_arrivals(students: int, *, duration: float, seed: int = DEFAULT_SEED, burst: float = 5.0) -> list[float]:
    """Seconds after the opening at which each student arrives, in student order (not
    sorted): half within the first `burst` seconds, the rest spread over the whole
    `duration`, uniformly at random from the seed."""
    rng = random.Random(f"arrivals:{seed}:{students}:{duration}")
    burst = min(burst, duration)
    early = students // 2
    return [rng.uniform(0, burst) if n < early else rng.uniform(0, duration) for n in range(students)]


def outcome_rank(status: str, reserve_position: int | None = None) -> int:
    """ENROLLED 0, RESERVED at position p: p, COURSE_FULL last."""
    if status == "ENROLLED":
        return ENROLLED_RANK
    if status == "RESERVED" and reserve_position is not None:
        return reserve_position
    return FULL_RANK


def count_inversions(ranks: Sequence[int]) -> int:
    """Pairs i < j with ranks[j] < ranks[i]: a later arrival with a strictly better outcome."""
    values = list(ranks)
    inversions = 0
    width = 1
    scratch = values[:]
    while width < len(values):
        for start in range(0, len(values), 2 * width):
            middle, end = min(start + width, len(values)), min(start + 2 * width, len(values))
            left, right, out = start, middle, start
            while left < middle and right < end:
                if values[right] < values[left]:
                    inversions += middle - left
                    scratch[out] = values[right]
                    right += 1
                else:
                    scratch[out] = values[left]
                    left += 1
                out += 1
            scratch[out:end] = values[left:middle] if left < middle else values[right:end]
        values, scratch = scratch, values
        width *= 2
    return inversions


@dataclass(frozen=True, slots=True)
class Fairness:
    inversions: int
    pairs: int
    courses: int
    worst_course: int | None  # the course with the largest share of inversions (by its id)
    worst_share: float

    @property
    def share(self) -> float:
        return self.inversions / self.pairs if self.pairs else 0.0


def fairness(requests: Iterable[tuple[int, float, int]]) -> Fairness:
    """(course, time it reached the server, outcome rank) for each answered register
    request; ties in time keep their given order."""
    per_course: dict[int, list[tuple[float, int]]] = {}
    for course, reached, rank in requests:
        per_course.setdefault(course, []).append((reached, rank))
    inversions = pairs = 0
    worst: tuple[float, int | None] = (0.0, None)
    for course, answered in per_course.items():
        answered.sort(key=lambda item: item[0])
        n = len(answered)
        course_pairs = n * (n - 1) // 2
        course_inversions = count_inversions([rank for _, rank in answered])
        inversions += course_inversions
        pairs += course_pairs
        if course_pairs and course_inversions / course_pairs > worst[0]:
            worst = (course_inversions / course_pairs, course)
    return Fairness(inversions, pairs, len(per_course), worst[1], round(worst[0], 6))
