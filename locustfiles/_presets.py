"""The load-test presets and the scenario-mix syntax, as plain data.

No Locust import here: `bench/run_load.py` and the tests read this module
without gevent's monkey-patching. The shapes in `load.py`, `stress.py`, ...
turn these specs into `LoadTestShape`s.

A preset's stages are fractions, so `--users` and `--run-time` scale the whole
curve: a stage ends at `until` x run time and holds `users` x peak users.
"""

from dataclasses import dataclass

USER_CLASSES = ("StudentUser", "PeakLoadUser", "RaceUser", "ReserveQueueUser", "DropPromotionUser")
# Registration day (locustfiles/opening.py): a class of its own, outside the everyday mix.
OPENING_CLASSES = ("OpeningUser",)
KNOWN_CLASSES = USER_CLASSES + OPENING_CLASSES


@dataclass(frozen=True)
class Stage:
    until: float  # end of the stage, as a fraction of the run time
    users: float  # users during the stage, as a fraction of the peak


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    users: int  # peak users
    spawn_rate: float  # users started (or stopped) per second
    run_time: int  # seconds
    stages: tuple[Stage, ...]
    mix: str
    # Service-level objectives: the run fails when one is missed.
    slo_error_rate: float  # failed requests / all requests
    slo_p95_ms: float  # p95 of every endpoint except login
    slo_login_p95_ms: float | None  # None: login latency is reported, not gated

    def users_at(self, elapsed: float, *, users: int, run_time: float) -> int | None:
        """Users wanted `elapsed` seconds into the run; None once the run is over."""
        if elapsed >= run_time:
            return None
        for stage in self.stages:
            if elapsed < stage.until * run_time:
                return max(1, round(stage.users * users))
        return None


# The opening minute (issue 14): half of the students in the first 5 s, the rest by the end
# of the first minute (steps of 5 s); the second minute lets the last ones finish.
OPENING_RUN_TIME = 120
OPENING_STAGES = (
    Stage(5 / OPENING_RUN_TIME, 0.5),
    *(Stage((5 + 5 * step) / OPENING_RUN_TIME, 0.5 + 0.5 * step / 11) for step in range(1, 12)),
    Stage(1.0, 1.0),
)

_EVERYDAY_MIX = "StudentUser:3,PeakLoadUser:4,RaceUser:1,ReserveQueueUser:1,DropPromotionUser:1"

PRESETS = {
    preset.name: preset
    for preset in [
        Preset(
            name="load",
            summary="the expected rush: 100 users, spawned 10/s, held for 10 minutes",
            users=100,
            spawn_rate=10,
            run_time=10 * 60,
            stages=(Stage(1.0, 1.0),),
            mix=_EVERYDAY_MIX,
            slo_error_rate=0.01,
            slo_p95_ms=500,
            slo_login_p95_ms=None,
        ),
        Preset(
            name="stress",
            summary="find the limit: five equal steps up to 300 users over 15 minutes",
            users=300,
            spawn_rate=10,
            run_time=15 * 60,
            stages=tuple(Stage(step / 5, step / 5) for step in range(1, 6)),
            mix=_EVERYDAY_MIX,
            slo_error_rate=0.05,
            slo_p95_ms=2000,
            slo_login_p95_ms=None,
        ),
        Preset(
            name="spike",
            summary="registration opens: 20 users, a jump to 200 at 200/s, hold, back to 20; 5 minutes",
            users=200,
            spawn_rate=200,
            run_time=5 * 60,
            stages=(Stage(0.2, 0.1), Stage(0.6, 1.0), Stage(1.0, 0.1)),
            mix="StudentUser:2,PeakLoadUser:4,RaceUser:2,ReserveQueueUser:1,DropPromotionUser:1",
            slo_error_rate=0.02,
            slo_p95_ms=2000,
            slo_login_p95_ms=None,
        ),
        Preset(
            name="soak",
            summary="leaks and drift: 80 users for 60 minutes",
            users=80,
            spawn_rate=10,
            run_time=60 * 60,
            stages=(Stage(1.0, 1.0),),
            mix="StudentUser:4,PeakLoadUser:3,RaceUser:1,ReserveQueueUser:1,DropPromotionUser:1",
            slo_error_rate=0.01,
            slo_p95_ms=500,
            slo_login_p95_ms=None,
        ),
        Preset(
            name="smoke",
            summary="CI check: 30 users of all five scenarios for 25 seconds; any failure fails",
            users=30,
            spawn_rate=15,
            run_time=25,
            stages=(Stage(1.0, 1.0),),
            mix="StudentUser:1,PeakLoadUser:1,RaceUser:1,ReserveQueueUser:1,DropPromotionUser:1",
            slo_error_rate=0.0,
            slo_p95_ms=5000,
            slo_login_p95_ms=10000,
        ),
        Preset(
            name="opening",
            summary="registration day: students arrive half in 5 s, all within a minute; five Zipf wishes each",
            users=500,
            spawn_rate=100,
            run_time=OPENING_RUN_TIME,
            stages=OPENING_STAGES,
            mix="OpeningUser:1",
            slo_error_rate=0.01,
            slo_p95_ms=2000,
            slo_login_p95_ms=None,
        ),
    ]
}


def parse_mix(text: str) -> dict[str, int]:
    """`"StudentUser:1,RaceUser:2"` -> {"StudentUser": 1, "RaceUser": 2}.

    A class named without a weight counts 1; classes left out do not run.
    Raises ValueError on an unknown class, a repeated class or a bad weight.
    """
    mix: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight_text = (piece.strip() for piece in item.partition(":"))
        if name not in KNOWN_CLASSES:
            raise ValueError(f"unknown user class {name!r} in mix; choose from {', '.join(KNOWN_CLASSES)}")
        if name in mix:
            raise ValueError(f"{name} appears twice in mix")
        try:
            weight = int(weight_text) if weight_text else 1
        except ValueError:
            raise ValueError(f"weight of {name} must be a whole number, not {weight_text!r}") from None
        if weight < 0:
            raise ValueError(f"weight of {name} must not be negative")
        mix[name] = weight
    if not any(mix.values()):
        raise ValueError(f"mix {text!r} runs no user class")
    return mix


def format_mix(mix: dict[str, int]) -> str:
    return ",".join(f"{name}:{weight}" for name, weight in mix.items())
