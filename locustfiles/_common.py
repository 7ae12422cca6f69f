"""What the scenarios, the shapes and the verdict share.

- the command-line options the load tests add to Locust's own;
- the scenario mix (--mix, or the preset's);
- the student pool: each simulated user logs in once as its own seeded student;
- the registration outcome counters, summed from the workers on the master;
- `PresetShape`, the base of the preset shapes in load.py, stress.py, ...

The leading underscore keeps Locust's loader from reading this file as a locustfile.
"""

import itertools
from collections import Counter
from typing import Any

from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from _presets import USER_CLASSES, Preset, parse_mix

LOGIN = "/auth/login"


# ---- options -------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    parser.add_argument(
        "--mix",
        default="",
        env_var="LOCUST_MIX",
        help="Scenario mix, e.g. 'StudentUser:3,RaceUser:1' (classes left out do not run). "
        "Default: the preset's mix; without a preset, every class once.",
    )
    parser.add_argument(
        "--semester-id",
        type=int,
        default=0,
        env_var="LOCUST_SEMESTER_ID",
        help="Semester to load (default: the open semester with the smallest id).",
    )
    parser.add_argument(
        "--students",
        type=int,
        default=1000,
        env_var="LOCUST_STUDENTS",
        help="Seeded students STU10000... to log in as (default 1000).",
    )
    parser.add_argument(
        "--student-prefix",
        default="STU",
        env_var="LOCUST_STUDENT_PREFIX",
        include_in_web_ui=False,
        help="Student numbers are this prefix and --first-student + n (default STU).",
    )
    parser.add_argument(
        "--first-student",
        type=int,
        default=10000,
        env_var="LOCUST_FIRST_STUDENT",
        include_in_web_ui=False,
        help="The number of the first seeded student (default 10000).",
    )
    parser.add_argument(
        "--student-password",
        default="test123",
        env_var="LOCUST_STUDENT_PASSWORD",
        include_in_web_ui=False,
        help="Password of the seeded students.",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="Seconds after which a request fails as a timeout (default 30).",
    )
    parser.add_argument(
        "--slo-error-rate",
        type=float,
        default=None,
        help="Most failed requests allowed, as a fraction (0.01 means 1 percent). Default: the preset's.",
    )
    parser.add_argument(
        "--slo-p95-ms",
        type=float,
        default=None,
        help="Highest p95 allowed on every endpoint but login, in ms. Default: the preset's.",
    )
    parser.add_argument(
        "--slo-login-p95-ms",
        type=float,
        default=None,
        help="Highest p95 allowed on login, in ms. Default: the preset's (most report it only).",
    )
    parser.add_argument(
        "--skip-invariants",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Do not check the data invariants after the run.",
    )
    parser.add_argument(
        "--report-dir",
        default="",
        include_in_web_ui=False,
        help="Folder for summary.json (bench/run_load.py sets it).",
    )


def option(environment, name: str, default: Any = None) -> Any:
    """A parsed option; the web UI may hand back an empty string for an unset one."""
    value = getattr(environment.parsed_options, name, None) if environment.parsed_options else None
    return default if value is None or value == "" else value


def is_coordinator(environment) -> bool:
    """The master, or the only runner: where shapes, mixes and the verdict live."""
    return not isinstance(environment.runner, WorkerRunner)


# ---- the scenario mix ------------------------------------------------------------

RUN_MIX: dict[str, int] = {}  # the mix of the current run, for the verdict


def preset_of(environment) -> Preset | None:
    shape = environment.shape_class
    return shape.preset if isinstance(shape, PresetShape) else None


def effective_mix(environment) -> dict[str, int]:
    """--mix, else the preset's mix, else every class once; only classes that are loaded."""
    preset = preset_of(environment)
    text = option(environment, "mix") or (preset.mix if preset else ",".join(USER_CLASSES))
    mix = parse_mix(text)
    loaded = {user_class.__name__ for user_class in environment.user_classes}
    running = {name: weight for name, weight in mix.items() if name in loaded and weight > 0}
    if not running:
        raise ValueError(f"mix {text!r} names none of the loaded user classes ({', '.join(sorted(loaded))})")
    return running


def _apply_mix(environment) -> None:
    """Weights are read by Locust's dispatcher when the first user of a run is placed,
    after test_start: a class left out of the mix gets weight 0 and never runs."""
    mix = effective_mix(environment)
    for user_class in environment.user_classes:
        user_class.weight = mix.get(user_class.__name__, 0)
    RUN_MIX.clear()
    RUN_MIX.update(mix)


# ---- the student pool ------------------------------------------------------------

_user_serials = itertools.count()


def next_student_number(environment) -> str:
    """A student no other simulated user has: process k of n hands out k, k+n, k+2n, ...

    The master tells every worker n (as `student_slots`) when a run starts; each
    worker knows its own index. Past --students the numbers wrap around.
    """
    slot = max(0, getattr(environment.runner, "worker_index", 0))
    slots = max(1, int(option(environment, "student_slots", 1)))
    students = max(1, int(option(environment, "students", 1000)))
    serial = slot + slots * next(_user_serials)
    first = int(option(environment, "first_student", 10000))
    return f"{option(environment, 'student_prefix', 'STU')}{first + serial % students}"


# ---- more for the verdict ----------------------------------------------------------

# Scenario modules add what their verdict needs (locustfiles/opening.py: fairness, wishes
# met); each function gets the environment on the coordinator and returns verdict keys.
VERDICT_EXTRAS: list = []


# ---- registration outcomes -----------------------------------------------------------

OUTCOMES: Counter = Counter()
# A register ends in exactly one of ENROLLED, RESERVED, FULL, ALREADY_REGISTERED and
# REFUSED (another rule: its code is in REFUSALS); a swap in SWAPPED or SWAP_REFUSED.
OUTCOME_NAMES = (
    "ENROLLED",
    "RESERVED",
    "FULL",
    "ALREADY_REGISTERED",
    "REFUSED",
    "DROPPED",
    "PROMOTED",
    "SWAPPED",
    "SWAP_REFUSED",
)
# Every expected refusal (register and swap), by its error code.
REFUSALS: Counter = Counter()


@events.report_to_master.add_listener
def _send_outcomes(client_id, data, **_kwargs) -> None:
    # Workers send what they counted since their last report (every few seconds, and once at the end).
    data["registration_outcomes"] = dict(OUTCOMES)
    data["refusals"] = dict(REFUSALS)
    OUTCOMES.clear()
    REFUSALS.clear()


@events.worker_report.add_listener
def _receive_outcomes(client_id, data, **_kwargs) -> None:
    OUTCOMES.update(data.get("registration_outcomes", {}))
    REFUSALS.update(data.get("refusals", {}))


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    OUTCOMES.clear()
    REFUSALS.clear()
    if not is_coordinator(environment):
        return
    _apply_mix(environment)
    if isinstance(environment.runner, MasterRunner):
        # Shipped to the workers with every spawn message, like any custom option.
        environment.parsed_options.student_slots = max(1, environment.runner.worker_count)


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    if not is_coordinator(environment):
        return
    effective_mix(environment)  # a bad --mix stops Locust before anything starts
    preset = preset_of(environment)
    if preset is not None:
        # Fill in the preset's numbers where none were given, so that the shape and
        # the web UI's form both show them (Locust's headless defaults are 1 user).
        options = environment.parsed_options
        if options.num_users is None:
            options.num_users = preset.users
        if options.spawn_rate is None:
            options.spawn_rate = preset.spawn_rate
        if options.run_time is None:
            options.run_time = preset.run_time


# ---- the shapes -------------------------------------------------------------------


class PresetShape(LoadTestShape):
    """A preset's curve, scaled to --users and --run-time, ramped at --spawn-rate.

    use_common_options: Locust's own -u/-r/-t (and the web UI's fields) feed the shape.
    """

    abstract = True
    use_common_options = True
    preset: Preset

    def tick(self):
        options = self.runner.environment.parsed_options
        users = int(options.num_users or self.preset.users)
        run_time = float(options.run_time or self.preset.run_time)
        spawn_rate = float(options.spawn_rate or self.preset.spawn_rate)
        wanted = self.preset.users_at(self.get_run_time(), users=users, run_time=run_time)
        return None if wanted is None else (wanted, spawn_rate)
