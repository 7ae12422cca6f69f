"""Load generation and measurement for `make bench`: wrk runs, pgbench runs, CPU shares.

wrk (C, one epoll loop per thread) generates the HTTP load, driven by
`wrk.lua`: one connection per wrk thread, so every request is timed
exactly and written to a file, one line each. Figures are computed here from
those lines, not from wrk's own summary (which "corrects" closed-loop
latencies for coordinated omission and cannot stop after an exact count).

CPU shares: every run records how many cores the load generator, the API
server, PostgreSQL and everything else on the machine used meanwhile, read
from /proc, so a figure can be told apart from a noisy neighbour.
"""

import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AnyStr, Literal, Required, TypedDict

WRK_SCRIPT = Path(__file__).resolve().with_name("wrk.lua")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU accounting -------------------------------------------------------------------------


def _read_stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own cpu seconds, reaped children's cpu seconds) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    children = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return ppid, own, children


def _process_table() -> dict[int, tuple[int, float, float]]:
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    return table


def _tree_cpu(table: dict[int, tuple[int, float, float]], root: int) -> float:
    """CPU seconds of a process tree: live members, plus what the root has reaped."""
    if root not in table:
        return 0.0
    total = table[root][1] + table[root][2]
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, own, _children) in table.items():
            if ppid == parent:
                total += own
                frontier.append(pid)
    return total


def _machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine since boot.

    Stolen: time the hypervisor gave this virtual machine's cores to others."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7]
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle - steal) / CLOCK_TICKS, steal / CLOCK_TICKS, total / CLOCK_TICKS


# Kernel TCP counters (/proc/net/netstat, TcpExt) that say a client's connection was not
# taken at once: a SYN dropped because a listening socket's accept queue was full, and the
# client's SYN sent again (after 1 s, then 3 s, 7 s: the seconds-long waits they add).
TCP_COUNTERS = ("ListenDrops", "TCPSynRetrans")


def tcp_counters() -> dict[str, int]:
    """The machine's TCP_COUNTERS since boot (zeros where the kernel does not tell)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return dict.fromkeys(TCP_COUNTERS, 0)
    # Pairs of lines: the counters' names, then their values.
    names, values = next(
        ((head.split()[1:], row.split()[1:]) for head, row in itertools.pairwise(lines) if head.startswith("TcpExt:")),
        ([], []),
    )
    table = dict(zip(names, values, strict=False))
    return {name: int(table.get(name, 0)) for name in TCP_COUNTERS}


@dataclass
class CpuWatch:
    """Who used the CPU between start() and stop(), in cores (CPU seconds per second)."""

    groups: dict[str, int]  # name -> root pid of a process tree
    _before: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    def _sample(self) -> dict[str, float]:
        table = _process_table()
        sample = {name: _tree_cpu(table, pid) for name, pid in self.groups.items() if pid}
        sample["bench"] = table[os.getpid()][1] if os.getpid() in table else 0.0
        sample["_busy"], sample["_steal"], sample["_total"] = _machine_cpu()
        return sample

    def start(self) -> "CpuWatch":
        self._before = self._sample()
        self._t0 = time.monotonic()
        return self

    def stop(self, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Cores used per group; `extra` adds CPU seconds of reaped children (the load generator)."""
        after = self._sample()
        wall = max(time.monotonic() - self._t0, 1e-9)
        used = {name: (after[name] - self._before.get(name, 0.0)) for name in after}
        for name, seconds in (extra or {}).items():
            used[name] = used.get(name, 0.0) + seconds
        busy, steal, total = used.pop("_busy"), used.pop("_steal"), used.pop("_total")
        cores = {name: round(seconds / wall, 3) for name, seconds in used.items()}
        accounted = sum(used.values())
        cores["other"] = round(max(busy - accounted, 0.0) / wall, 3)
        cores["stolen"] = round(steal / wall, 3)
        cores["idle"] = round(max(total - busy - steal, 0.0) / wall, 3)
        return cores


def is_running(process: subprocess.Popen[AnyStr]) -> bool:
    """Like poll() is None, but leaves an exited child unreaped for wait_with_rusage()."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def wait_with_rusage(process: subprocess.Popen[AnyStr], timeout: float) -> float:
    """Wait for a child and return the CPU seconds it used (user + system)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            timeout = float("inf")  # the kill ends it; wait for that
        time.sleep(0.02)


# --- wrk ----------------------------------------------------------------------------------


class WrkPlan(TypedDict, total=False):
    """What wrk.lua reads (see the plans it lists); start() adds the last three."""

    kind: Required[Literal["get", "hot", "full", "spread", "login"]]
    path: str
    tokens: list[str]
    course: int
    courses: list[int]
    per_thread: int
    per_student_block: int
    student_numbers: list[str]
    password: str
    think_ms: int
    threads: int
    out_prefix: str
    done_path: str


def _lua(value: object) -> str:
    """A Python value (dict, list, str, int, float, None) as a Lua literal."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua for what we send
    raise TypeError(f"cannot write {type(value).__name__} to Lua")


class LoadSummary(TypedDict):
    """A run's figures, as results.json keeps them; `rate_per_s` counts the expected statuses only."""

    clients: int
    requests: int
    statuses: dict[str, int]
    rate_per_s: float
    all_responses_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    seconds: float
    cpu_cores: dict[str, float]


@dataclass
class LoadResult:
    """Per-request records of one wrk run, and the CPU used meanwhile."""

    name: str
    clients: int
    started_us: int  # CLOCK_MONOTONIC µs when the first request left
    ends_us: list[int]  # completion times, sorted
    latencies_us: list[int]  # in completion order
    statuses: list[int]
    cpu_cores: dict[str, float]
    wall_s: float

    @property
    def count(self) -> int:
        return len(self.ends_us)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.statuses:
            counts[str(status)] = counts.get(str(status), 0) + 1
        return dict(sorted(counts.items()))

    def window(self, start_us: int, end_us: int) -> "LoadResult":
        """Only the requests that were sent and completed inside [start, end]."""
        keep = [
            i
            for i, (end, lat) in enumerate(zip(self.ends_us, self.latencies_us, strict=True))
            if end - lat >= start_us and end <= end_us
        ]
        return LoadResult(
            name=self.name,
            clients=self.clients,
            started_us=start_us,
            ends_us=[self.ends_us[i] for i in keep],
            latencies_us=[self.latencies_us[i] for i in keep],
            statuses=[self.statuses[i] for i in keep],
            cpu_cores=self.cpu_cores,
            wall_s=(end_us - start_us) / 1e6,
        )

    def rate(self, statuses: set[int] | None = None) -> float:
        """Completions per second from the first request sent to the last response."""
        if not self.ends_us:
            return 0.0
        n = self.count if statuses is None else sum(1 for s in self.statuses if s in statuses)
        return n / max((self.ends_us[-1] - self.started_us) / 1e6, 1e-9)

    def percentile_ms(self, p: float) -> float:
        if not self.latencies_us:
            return float("nan")
        ordered = sorted(self.latencies_us)
        # Nearest-rank: the smallest value with at least p% of the samples at or below it.
        rank = max(1, -(-len(ordered) * p // 100))
        return ordered[int(rank) - 1] / 1000

    def quarter_rates(self) -> list[float]:
        """Completions per second in each quarter of the completions (first to last)."""
        n = self.count
        if n < 4:
            return []
        bounds = [self.started_us] + [self.ends_us[(n * q) // 4 - 1] for q in (1, 2, 3, 4)]
        return [((n * (q + 1)) // 4 - (n * q) // 4) / max((bounds[q + 1] - bounds[q]) / 1e6, 1e-9) for q in range(4)]

    def summary(self, ok: set[int]) -> LoadSummary:
        return {
            "clients": self.clients,
            "requests": self.count,
            "statuses": self.status_counts(),
            "rate_per_s": round(self.rate(ok), 2),
            "all_responses_per_s": round(self.rate(), 2),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p95_ms": round(self.percentile_ms(95), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies_us, default=0) / 1000, 2),
            "seconds": round((self.ends_us[-1] - self.started_us) / 1e6, 3) if self.ends_us else 0.0,
            "cpu_cores": self.cpu_cores,
        }


@dataclass
class WrkRun:
    """One wrk process in flight; start() returns at once, finish() collects."""

    name: str
    base_url: str
    plan: WrkPlan
    clients: int
    max_seconds: float
    workdir: Path
    cpu_groups: dict[str, int]
    _process: subprocess.Popen[str] | None = None
    _watch: CpuWatch | None = None
    _t0: float = 0.0

    def start(self) -> "WrkRun":
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise ValueError("the bench only sends load to 127.0.0.1")
        run_dir = self.workdir / f"wrk-{self.name}"
        run_dir.mkdir(parents=True)
        self._run_dir = run_dir
        plan: WrkPlan = {
            **self.plan,
            "threads": self.clients,
            "out_prefix": str(run_dir / "thread-"),
            "done_path": str(run_dir / "done"),
        }
        plan_path = run_dir / "plan.lua"
        plan_path.write_text("return " + _lua(plan) + "\n")
        command = [
            "wrk",
            "-t",
            str(self.clients),
            "-c",
            str(self.clients),
            "-d",
            f"{int(self.max_seconds)}s",
            "--timeout",
            "30s",
            "-s",
            str(WRK_SCRIPT),
            self.base_url,
            "--",
            str(plan_path),
        ]
        self._watch = CpuWatch(self.cpu_groups).start()
        self._t0 = time.monotonic()
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self

    def finish(self, *, stop_early: bool = False) -> LoadResult:
        """Wait for wrk: until its duration ends, every thread of a counted plan is
        done, or (stop_early) at once. SIGINT makes wrk stop and flush its files."""
        process, watch = self._process, self._watch
        if process is None or watch is None:
            raise RuntimeError(f"finish() before start() in {self.name}")
        threads = self.clients
        done_path = self._run_dir / "done"
        while is_running(process):
            finished = done_path.exists() and done_path.stat().st_size >= threads
            if stop_early or finished:
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.01)
        wrk_cpu = wait_with_rusage(process, timeout=self.max_seconds + 30)
        cores = watch.stop(extra={"load_generator": wrk_cpu})
        assert process.stdout is not None  # stdout=PIPE
        output = process.stdout.read()
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed ({process.returncode}) in {self.name}:\n{output}")
        return self._collect(cores, time.monotonic() - self._t0, output)

    def _collect(self, cores: dict[str, float], wall: float, output: str) -> LoadResult:
        records = []
        for path in self._run_dir.glob("thread-*.txt"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:
                    records.append((int(float(parts[0])), int(float(parts[1])), int(parts[2])))
        if not records:
            raise RuntimeError(f"wrk recorded no responses in {self.name}:\n{output}")
        records.sort()
        socket_errors = re.search(r"Socket errors: (.*)", output)
        if socket_errors:
            print(f"  note: wrk reported socket errors in {self.name}: {socket_errors.group(1)}")
        return LoadResult(
            name=self.name,
            clients=self.clients,
            started_us=min(end - lat for end, lat, _ in records),
            ends_us=[r[0] for r in records],
            latencies_us=[r[1] for r in records],
            statuses=[r[2] for r in records],
            cpu_cores=cores,
            wall_s=wall,
        )


def run_wrk(
    name: str,
    base_url: str,
    plan: WrkPlan,
    *,
    clients: int,
    max_seconds: float,
    workdir: Path,
    cpu_groups: dict[str, int],
) -> LoadResult:
    return WrkRun(name, base_url, plan, clients, max_seconds, workdir, cpu_groups).start().finish()


# --- pgbench --------------------------------------------------------------------------------


class PgbenchSummary(TypedDict):
    clients: int
    tps: float
    latency_avg_ms: float
    transactions: int
    failed: int
    cpu_cores: dict[str, float]


@dataclass
class PgbenchResult:
    name: str
    clients: int
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    cpu_cores: dict[str, float]

    def summary(self) -> PgbenchSummary:
        return {
            "clients": self.clients,
            "tps": round(self.tps, 1),
            "latency_avg_ms": round(self.latency_ms, 3),
            "transactions": self.transactions,
            "failed": self.failed,
            "cpu_cores": self.cpu_cores,
        }


def run_pgbench(
    pgbench: str,
    name: str,
    *,
    script: Path,
    clients: int,
    seconds: int,
    socket_dir: str,
    database: str,
    defines: dict[str, str],
    cpu_groups: dict[str, int],
    env: dict[str, str],
) -> PgbenchResult:
    command = [
        pgbench,
        "-n",
        "-M",
        "simple",
        "-c",
        str(clients),
        "-j",
        "1",
        "-T",
        str(seconds),
        "-h",
        socket_dir,
        "-U",
        "postgres",
        "-f",
        str(script),
    ]
    for key, value in defines.items():
        command += ["-D", f"{key}={value}"]
    command.append(database)
    watch = CpuWatch(cpu_groups).start()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    cpu = wait_with_rusage(process, timeout=seconds + 60)
    cores = watch.stop(extra={"load_generator": cpu})
    assert process.stdout is not None  # stdout=PIPE
    output = process.stdout.read()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    if process.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed in {name}:\n{output}")
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return PgbenchResult(
        name=name,
        clients=clients,
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else float("nan"),
        transactions=int(processed.group(1)) if processed else 0,
        failed=int(failed.group(1)) if failed else 0,
        cpu_cores=cores,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
