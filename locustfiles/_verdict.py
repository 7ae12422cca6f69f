"""The verdict at the end of a run, given once by the master (or the only runner).

- every endpoint: requests, failures, p50/p95/p99/max from Locust's own
  response-time histogram (the numbers of its HTML report, never averages), RPS;
- the error rate over all requests;
- the registration outcomes the users counted (ENROLLED, RESERVED, FULL, ...),
  summed over every worker, and the expected refusals by error code
  (COURSE_FULL, PREREQUISITE_MISSING, REGISTRATION_HOLD, ...);
- the data invariants, read from the database after the run by
  `scripts/check_invariants.py` (the same check a tester can run alone);
- the service-level objectives of the preset (or of --slo-* options).

A missed objective or a broken invariant makes the exit code 1, so a preset can
gate CI. With --report-dir the verdict is also written to summary.json.
"""

import ipaddress
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import gevent
from locust import events
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner

from _common import (
    LOGIN,
    OUTCOME_NAMES,
    OUTCOMES,
    REFUSALS,
    RUN_MIX,
    VERDICT_EXTRAS,
    is_coordinator,
    option,
    preset_of,
)
from _presets import format_mix

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROGRESS_EVERY_SECONDS = 15
# Objectives of a run without a preset (plain `locust -f locustfiles/scenarios.py`).
DEFAULT_SLO = {"error_rate": 0.01, "p95_ms": 1000.0, "login_p95_ms": None}

logger = logging.getLogger("load-test")
_run = {"started": 0.0, "workers": 0, "peak_users": 0}
_printed: list[str] = []


@events.init.add_listener
def _start_progress_log(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if is_coordinator(environment) and options and options.headless and options.only_summary:
        gevent.spawn(_log_progress, environment)


def _log_progress(environment) -> None:
    """One line every few seconds, in place of Locust's periodic table (--only-summary)."""
    while True:
        gevent.sleep(PROGRESS_EVERY_SECONDS)
        runner, total = environment.runner, environment.runner.stats.total
        if runner.state not in ("spawning", "running") or not total.num_requests:
            continue
        p95 = total.get_current_response_time_percentile(0.95) or 0
        logger.info(
            "%4.0f s  %3d users  %7.1f req/s  %d failed (%.2f%%)  p95 %d ms (last 10 s)",
            time.time() - _run["started"],
            runner.user_count,
            total.current_rps,
            total.num_failures,
            100 * total.fail_ratio,
            p95,
        )


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if is_coordinator(environment):
        workers = environment.runner.worker_count if isinstance(environment.runner, MasterRunner) else 0
        _run.update(started=time.time(), workers=workers, peak_users=0)


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count, **_kwargs) -> None:
    _run["peak_users"] = max(_run["peak_users"], user_count)


@events.quitting.add_listener
def _judge(environment, **_kwargs) -> None:
    if not is_coordinator(environment) or not _run["started"]:
        return  # a worker, or a web UI closed before any test ran
    # The numbers must be final before they are judged. Locust fires `quitting` before
    # its own runner.quit() (locust/main.py, shutdown()). Headless, the runner has quit
    # already when the run ended. A master also quits in a `quitting` listener of its
    # own, which runs before this one (listeners run last-registered-first, and the
    # runner registers after the locustfiles are imported): it tells the workers to quit
    # and waits for their final reports. But a local runner stopped in web mode (Ctrl-C
    # or SIGTERM while a test runs) is still running its users here, so quit it first.
    # Quitting twice is harmless: Locust's shutdown() quits the runner again anyway.
    runner = environment.runner
    if runner.state not in (STATE_STOPPED, STATE_STOPPING):
        runner.quit()
    verdict = build_verdict(environment)
    environment.process_exit_code = 0 if verdict["passed"] else 1
    report_dir = option(environment, "report_dir")
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        (Path(report_dir) / "summary.json").write_text(json.dumps(verdict, indent=2) + "\n")
    _printed[:] = render(verdict, report_dir)


@events.quit.add_listener
def _print_verdict(**_kwargs) -> None:
    # Printed after Locust's own final tables, so it is the last thing on the screen.
    if _printed:
        print("\n".join(_printed), flush=True)


# ---- the verdict --------------------------------------------------------------------


def build_verdict(environment) -> dict:
    runner, stats = environment.runner, environment.runner.stats
    preset = preset_of(environment)
    endpoints = [_endpoint(entry) for entry in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))]
    total = _endpoint(stats.total)
    error_rate = total["failures"] / total["requests"] if total["requests"] else 0.0
    history_peak = max((point["user_count"][1] for point in stats.history), default=0)
    slo = _objectives(environment)
    invariants = check_invariants(environment)
    failures = sorted(
        (
            {"request": f"{e.method} {e.name}", "error": _error_text(e.error), "occurrences": e.occurrences}
            for e in stats.errors.values()
        ),
        key=lambda failure: -failure["occurrences"],
    )
    checks = _checks(endpoints, total, error_rate, slo, invariants, len(runner.exceptions))
    extras: dict = {}
    for extra in VERDICT_EXTRAS:
        extras.update(extra(environment))
    return {
        **extras,
        "preset": preset.name if preset else None,
        "host": environment.host,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(_run["started"] or time.time())),
        "duration_s": round(max(0.0, (stats.last_request_timestamp or stats.start_time) - stats.start_time), 1),
        "peak_users": max(history_peak, _run["peak_users"]),
        "workers": _run["workers"],
        "mix": format_mix(RUN_MIX),
        "endpoints": endpoints,
        "total": total,
        "error_rate": round(error_rate, 6),
        "failures": failures,
        "exceptions": sum(e["count"] for e in runner.exceptions.values()),
        "outcomes": {name: OUTCOMES.get(name, 0) for name in OUTCOME_NAMES},
        "refusals": dict(sorted(REFUSALS.items(), key=lambda item: (-item[1], item[0]))),
        "invariants": invariants,
        "slo": slo,
        "checks": checks,
        "passed": all(check["ok"] for check in checks),
    }


def _endpoint(entry) -> dict:
    def percentile(fraction: float) -> int:
        return entry.get_response_time_percentile(fraction) if entry.num_requests else 0

    return {
        "method": entry.method or "",
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "p50_ms": percentile(0.50),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
        "max_ms": round(entry.max_response_time or 0),
        "rps": round(entry.total_rps, 2),
    }


def _error_text(error) -> str:
    text = error if isinstance(error, str) else repr(error)
    return text.removeprefix("CatchResponseError('").removesuffix("')")


def _number(value) -> float | None:
    return None if value is None or value == "" else float(value)


def _objectives(environment) -> dict:
    preset = preset_of(environment)
    defaults = (
        {"error_rate": preset.slo_error_rate, "p95_ms": preset.slo_p95_ms, "login_p95_ms": preset.slo_login_p95_ms}
        if preset
        else DEFAULT_SLO
    )
    given = {
        "error_rate": _number(option(environment, "slo_error_rate")),
        "p95_ms": _number(option(environment, "slo_p95_ms")),
        "login_p95_ms": _number(option(environment, "slo_login_p95_ms")),
    }
    return {key: given[key] if given[key] is not None else defaults[key] for key in defaults}


def _checks(endpoints, total, error_rate, slo, invariants, exceptions) -> list[dict]:
    checks = [
        {
            "name": "requests made",
            "ok": total["requests"] > 0,
            "detail": f"{total['requests']} requests",
        },
        {
            "name": "error rate",
            "ok": error_rate <= slo["error_rate"],
            "detail": f"{100 * error_rate:.2f}% failed (objective <= {100 * slo['error_rate']:.2f}%)",
        },
    ]
    others = [e for e in endpoints if e["name"] != LOGIN and e["requests"]]
    if others:
        slowest = max(others, key=lambda e: e["p95_ms"])
        checks.append(
            {
                "name": "p95",
                "ok": slowest["p95_ms"] <= slo["p95_ms"],
                "detail": f"slowest p95 {slowest['p95_ms']} ms on {slowest['method']} {slowest['name']} "
                f"(objective <= {slo['p95_ms']:.0f} ms on every endpoint but login)",
            }
        )
    login = next((e for e in endpoints if e["name"] == LOGIN and e["requests"]), None)
    if login and slo["login_p95_ms"] is not None:
        checks.append(
            {
                "name": "login p95",
                "ok": login["p95_ms"] <= slo["login_p95_ms"],
                "detail": f"login p95 {login['p95_ms']} ms (objective <= {slo['login_p95_ms']:.0f} ms)",
            }
        )
    checks.append(
        {
            "name": "scenario code",
            "ok": exceptions == 0,
            "detail": "no exceptions" if not exceptions else f"the locustfiles raised {exceptions} exceptions",
        }
    )
    checks.append(
        {
            "name": "invariants",
            "ok": invariants["status"] in ("ok", "not_checked", "skipped"),
            "detail": invariants.get("detail") or invariants["status"],
        }
    )
    return checks


# ---- the data invariants ----------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    hostname = urlsplit(host or "").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_invariants(environment) -> dict:
    """Run scripts/check_invariants.py in its own process (no gevent, plain psycopg2).

    The database is DATABASE_URL when set. Otherwise, for a server on this machine,
    the script finds the `make run` database itself; for a remote server nothing is
    checked (and the verdict says so).
    """
    if option(environment, "skip_invariants", False):
        return {"status": "skipped", "detail": "not checked (--skip-invariants)"}
    named = bool(os.environ.get("DATABASE_URL"))
    if not named and not _is_loopback(environment.host):
        return {
            "status": "not_checked",
            "detail": "not checked: set DATABASE_URL (run_load.py --database-url) to the server's database",
        }
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "scripts.check_invariants", "--json"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"status": "error", "detail": f"scripts/check_invariants.py did not finish: {error}"}
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
        return {"status": "error", "detail": f"scripts/check_invariants.py failed ({completed.returncode}): {tail}"}
    if report.get("status") == "unavailable" and not named:
        report["status"] = "not_checked"
        report["detail"] = f"not checked: {report.get('detail')}"
    return report


# ---- rendering -------------------------------------------------------------------------


def render(verdict: dict, report_dir: str | None) -> list[str]:
    rule = "=" * 100
    lines = [
        rule,
        f"VERDICT {'PASS' if verdict['passed'] else 'FAIL'}"
        f"{' - preset ' + verdict['preset'] if verdict['preset'] else ''}: {verdict['host']}, "
        f"{verdict['duration_s']:.0f} s, peak {verdict['peak_users']} users"
        + (f", {verdict['workers']} workers" if verdict["workers"] else ""),
        f"mix {verdict['mix']}",
        "",
        f"{'Endpoint':<44}{'Requests':>9}{'Fails':>7}{'p50':>7}{'p95':>7}{'p99':>7}{'Max':>7}{'RPS':>8}",
    ]
    for row in [*verdict["endpoints"], {**verdict["total"], "method": "", "name": "All requests"}]:
        lines.append(
            f"{(row['method'] + ' ' + row['name']).strip():<44}{row['requests']:>9}{row['failures']:>7}"
            f"{row['p50_ms']:>7}{row['p95_ms']:>7}{row['p99_ms']:>7}{row['max_ms']:>7}{row['rps']:>8.1f}"
        )
    lines.append("(times in ms; percentiles from Locust's response-time histogram)")
    lines.append(f"error rate {100 * verdict['error_rate']:.2f}%")
    for failure in verdict["failures"][:8]:
        lines.append(f"  {failure['occurrences']:>6} x {failure['request']}: {failure['error']}")
    lines.append("")
    lines.append("outcomes   " + "  ".join(f"{name} {count}" for name, count in verdict["outcomes"].items()))
    refusals = verdict.get("refusals") or {}
    lines.append("refusals   " + ("  ".join(f"{code} {count}" for code, count in refusals.items()) or "none"))
    invariants = verdict["invariants"]
    if invariants["status"] in ("ok", "violated"):
        lines.append(
            f"invariants {'OK' if invariants['status'] == 'ok' else 'BROKEN'}: "
            f"{invariants['courses_checked']} courses, {invariants['registrations_checked']} registrations "
            f"checked in {invariants.get('database', '?')}"
        )
        lines.extend(
            f"  {v.get('subject') or 'course ' + str(v['course_id'])}: {v['problem']}"
            for v in invariants.get("violations", [])[:20]
        )
    else:
        lines.append(f"invariants {invariants.get('detail') or invariants['status']}")
    if "opening" in verdict:
        opening = verdict["opening"]
        lines.append(
            f"opening    wishes met {opening['wishes_met']}/{opening['wishes']}, first wish enrolled "
            f"{opening['first_wish_enrolled']}/{opening['students']}; fairness inversions "
            f"{100 * opening['inversions_share']:.3f}% of {opening['pairs']} pairs (by send time, "
            f"{opening['courses']} courses); 503 SERVICE_BUSY retried {opening['busy_retries']}"
        )
    lines.append("")
    for check in verdict["checks"]:
        lines.append(f"  [{'ok' if check['ok'] else 'FAIL':^4}] {check['name']:<14} {check['detail']}")
    if report_dir:
        lines.append(f"report: {report_dir}/ (report.html, locust_*.csv, summary.json)")
    lines.append(rule)
    return lines
