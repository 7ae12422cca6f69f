"""Run a load-test preset against the API and keep its report (`make load`).

    python -m bench.run_load [--preset load|stress|spike|soak|smoke]
        [--users N] [--spawn-rate R] [--run-time 10m] [--mix "StudentUser:1,RaceUser:2"]
        [--processes N] [--host http://127.0.0.1:8500] [--web] [-- <more locust options>]

Every run writes reports/<preset>-<timestamp>/: Locust's HTML report (charts),
its CSV and JSON statistics, the console log, and summary.json with the verdict
(see docs/load-testing.md). The exit status is the verdict's: 0 when every
service-level objective is met and the data invariants hold, 1 when not.

Defaults can also come from the environment (the container stack uses this):
LOAD_PRESET, LOAD_HOST, LOAD_USERS, LOAD_SPAWN_RATE, LOAD_RUN_TIME, LOAD_MIX,
LOAD_PROCESSES, LOAD_MODE (headless|web), LOAD_EXPECT_WORKERS,
LOAD_EXPECT_WORKERS_MAX_WAIT.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import overload

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = PROJECT_ROOT / "locustfiles"
DEFAULT_HOST = "http://127.0.0.1:8500"  # `make run`
# A headless master never waits forever for workers that will not come (a crashed
# container, a wrong --master-host): Locust gives up after this many seconds.
EXPECT_WORKERS_MAX_WAIT = 120

sys.path.insert(0, str(LOCUSTFILES))
from _presets import PRESETS, parse_mix  # noqa: E402  (plain data: no Locust import)

sys.path.remove(str(LOCUSTFILES))

_TIMESPAN = re.compile(r"^(\d+|(\d+h)?(\d+m)?(\d+s)?)$")


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _timespan(text: str) -> str:
    if not text or not _TIMESPAN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90, 90s, 10m or 1h30m")
    return text


def _mix(text: str) -> str:
    try:
        parse_mix(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def base_url(host: str) -> str:
    """`127.0.0.1:8500` -> `http://127.0.0.1:8500`; a URL stays as it is."""
    host = host.strip().rstrip("/")
    return host if "://" in host else f"http://{host}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    presets = "\n".join(f"  {p.name:<7} {p.summary}" for p in PRESETS.values())
    parser = argparse.ArgumentParser(
        description=__doc__ + "\npresets:\n" + presets,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=_env("LOAD_PRESET", "load"))
    parser.add_argument(
        "--host",
        default=_env("LOAD_HOST", DEFAULT_HOST),
        help=f"the API under test (default {DEFAULT_HOST}, the `make run` server)",
    )
    parser.add_argument("--users", type=int, default=_env("LOAD_USERS"), help="peak users (default: the preset's)")
    parser.add_argument(
        "--spawn-rate",
        type=float,
        default=_env("LOAD_SPAWN_RATE"),
        help="users started per second (default: the preset's)",
    )
    parser.add_argument(
        "--run-time", type=_timespan, default=_env("LOAD_RUN_TIME"), help="e.g. 90s, 10m, 1h (default: the preset's)"
    )
    parser.add_argument(
        "--mix",
        type=_mix,
        default=_env("LOAD_MIX"),
        help='scenario weights, e.g. "StudentUser:3,RaceUser:1" (default: the preset\'s)',
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=_env("LOAD_PROCESSES"),
        help="Locust worker processes on this machine (-1: one per core)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--web", dest="mode", action="store_const", const="web", help="open Locust's web UI instead of starting at once"
    )
    mode.add_argument("--headless", dest="mode", action="store_const", const="headless")
    parser.set_defaults(mode=_env("LOAD_MODE", "headless"))
    parser.add_argument("--web-host", default="127.0.0.1", help="interface of the web UI (default 127.0.0.1)")
    parser.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    parser.add_argument(
        "--master", action="store_true", help="be the master of workers started elsewhere (`locust ... --worker`)"
    )
    parser.add_argument(
        "--expect-workers",
        type=int,
        default=int(_env("LOAD_EXPECT_WORKERS", "1")),
        help="with --master --headless: workers to wait for before starting (default 1)",
    )
    parser.add_argument(
        "--expect-workers-max-wait",
        type=int,
        default=int(_env("LOAD_EXPECT_WORKERS_MAX_WAIT", str(EXPECT_WORKERS_MAX_WAIT))),
        help="with --master --headless: seconds to wait for them before giving up "
        f"with exit status 1 (default {EXPECT_WORKERS_MAX_WAIT})",
    )
    parser.add_argument(
        "--database-url",
        help="database of the server under test, for the invariant check "
        "(default: DATABASE_URL, or the `make run` database for a local server)",
    )
    parser.add_argument("--skip-invariants", action="store_true", help="do not check the data after the run")
    parser.add_argument("--semester-id", type=int, help="semester to load (default: the first open one)")
    parser.add_argument("--students", type=int, help="seeded students to log in as (default 1000)")
    parser.add_argument("--slo-error-rate", type=float, help="most failed requests allowed, e.g. 0.01")
    parser.add_argument("--slo-p95-ms", type=float, help="highest p95 allowed, every endpoint but login (ms)")
    parser.add_argument("--slo-login-p95-ms", type=float, help="highest p95 allowed on login (ms)")
    parser.add_argument("--reports-dir", default=str(PROJECT_ROOT / "reports"), help="default: reports/")
    parser.add_argument("--skip-preflight", action="store_true", help="do not check the API answers first")
    parser.add_argument("locust_args", nargs="*", help="after --: more options for locust itself")
    args = parser.parse_args(argv)
    args.host = base_url(args.host)
    if args.processes is not None and args.master:
        parser.error("--processes runs its own master; leave out --master")
    return args


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def report_dir(reports_dir: str, preset: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(reports_dir) / f"{preset}-{stamp}"
    serial = 1
    while folder.exists():
        serial += 1
        folder = Path(reports_dir) / f"{preset}-{stamp}-{serial}"
    folder.mkdir(parents=True)
    return folder


def locust_command(args: argparse.Namespace, folder: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILES / f"{args.preset}.py"),
        "--host",
        args.host,
        "--html",
        str(folder / "report.html"),
        "--csv",
        str(folder / "locust"),
        "--json-file",
        str(folder / "locust_stats"),
        "--report-dir",
        str(folder),
    ]
    if args.mode == "web":
        command += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
    else:
        command += ["--headless", "--only-summary"]
    if args.master:
        command += ["--master"]
        if args.mode == "headless":
            command += [
                "--expect-workers",
                str(args.expect_workers),
                "--expect-workers-max-wait",
                str(args.expect_workers_max_wait),
            ]
    if args.processes is not None:
        # The forked workers talk to their master on this machine only, on a free port:
        # two runs at once (two test suites, say) must not meet on Locust's default 5557.
        port = str(free_port())
        command += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port]
    options = {
        "--users": args.users,
        "--spawn-rate": args.spawn_rate,
        "--run-time": args.run_time,
        "--mix": args.mix,
        "--processes": args.processes,
        "--semester-id": args.semester_id,
        "--students": args.students,
        "--slo-error-rate": args.slo_error_rate,
        "--slo-p95-ms": args.slo_p95_ms,
        "--slo-login-p95-ms": args.slo_login_p95_ms,
    }
    for flag, value in options.items():
        if value is not None:
            command += [flag, str(value)]
    if args.skip_invariants:
        command += ["--skip-invariants"]
    return command + list(args.locust_args)


def preflight(host: str, semester_id: int | None) -> str | None:
    """A reason the run would be pointless (no API, nothing open), or None."""
    path = "/health"
    try:
        with urllib.request.urlopen(f"{host}{path}", timeout=5) as response:
            response.read()
        path = f"/semesters/{semester_id}" if semester_id else "/semesters/"
        with urllib.request.urlopen(f"{host}{path}", timeout=10) as response:
            semesters = json.load(response)
    except urllib.error.HTTPError as error:
        return f"{host}{path} answered {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return (
            f"no API answers at {host} ({getattr(error, 'reason', error)}). "
            "Start one with `make run`, or point --host (make load HOST=...) at it."
        )
    if semester_id:
        if not semesters.get("is_registration_open"):
            return f"semester {semester_id} is not open for registration at {host}"
    elif not any(s.get("is_registration_open") for s in semesters):
        return f"no semester is open for registration at {host}: `make seed` re-opens the demo semester"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_preflight and (problem := preflight(args.host, args.semester_id)):
        print(f"run_load: {problem}", file=sys.stderr)
        return 2

    folder = report_dir(args.reports_dir, args.preset)
    command = locust_command(args, folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.database_url:
        env["DATABASE_URL"] = args.database_url  # by environment, so no `ps` shows a password
    (folder / "command.txt").write_text(shlex.join(command) + "\n")
    print(f"run_load: preset {args.preset} against {args.host}; report in {folder}/", flush=True)

    # Locust's output goes to the screen and to locust.log. Ctrl-C reaches Locust
    # directly (same process group): it stops, judges and writes the report. A
    # SIGTERM (`docker compose stop`) is passed on as the same Ctrl-C.
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: process.send_signal(signal.SIGINT))
    assert process.stdout is not None  # stdout=PIPE
    with open(folder / "locust.log", "wb") as log:
        for line in process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
    return process.wait()


if __name__ == "__main__":
    sys.exit(main())
