"""Failover of the local cluster (scripts/cluster.py): promote the standby, rejoin the old primary.

    python -m scripts.failover                 # after the primary died
    python -m scripts.failover --no-rejoin     # promote only; rejoin later with --rejoin-only
    python -m scripts.failover --rejoin-only   # make the old primary the new standby

The runbook (docs/deployment.md, "Failover"), step by step:

1. Refuse while the primary still answers: two primaries would each accept writes
   (split brain). Stop it first, or fence its machine.
2. Promote the standby (`pg_ctl promote`). It has every acknowledged commit: the old
   primary acknowledged one only once this standby had flushed it (synchronous_commit=on).
3. On the new primary, stop waiting for a synchronous standby
   (`synchronous_standby_names=''`), or no write would complete until one is back. From
   here until step 5 a commit lives on one server only, as with any single server.
   The API nodes need nothing: their multi-host DATABASE_URL (target_session_attrs=
   read-write) connects to whichever server accepts writes, and a pooled connection
   broken by the failover fails once (a retryable 503) before its pool reconnects.
4. Rejoin the old primary as the new standby: wait until none of its processes is left,
   `pg_rewind` it onto the new primary's timeline (it may hold transactions that were
   never acknowledged; pg_rewind discards them), write standby.signal and the new
   primary_conninfo (`-R`), start it. If pg_rewind cannot (WAL no longer there), clone it
   afresh with pg_basebackup.
5. Once it streams, require it synchronous again (`synchronous_standby_names='*'`).
"""

import argparse
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.cluster import (
    DEFAULT_ROOT,
    ClusterError,
    Layout,
    answers,
    clone_standby,
    give_to_system_user,
    in_recovery,
    log,
    pg,
    postmaster_pid,
    query,
    require_synchronous_standby,
    start_server,
    wait_for,
)


@dataclass
class FailoverReport:
    old_primary: str
    new_primary: str
    promoted_seconds: float
    rejoined_seconds: float | None
    rejoined_by: str | None  # "pg_rewind" or "pg_basebackup"


def processes_in(data_dir: Path) -> list[int]:
    """Processes running in a server's data folder (a postmaster and its backends run there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == str(data_dir):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def wait_until_gone(data_dir: Path, timeout: float = 30.0) -> None:
    """Backends of a killed postmaster exit by themselves within moments; past timeout, SIGKILL them
    (they are the dead server's own: a rewind must not run beside them)."""
    deadline = time.monotonic() + timeout
    while processes_in(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in processes_in(data_dir):
        log(f"killing leftover process {pid} of the old primary")
        os.kill(pid, signal.SIGKILL)


def promote(layout: Layout) -> tuple[str, str]:
    old, new = layout.primary, layout.standby
    if answers(layout, old):
        raise ClusterError(
            f"{old} (the primary) still answers on port {layout.pg_ports[old]}: refusing to promote {new} "
            "beside it (two primaries). Stop it first: pg_ctl -D ... stop, or kill its postmaster."
        )
    if not answers(layout, new):
        raise ClusterError(f"{new} (the standby) does not answer either: nothing to promote")
    if in_recovery(layout, new):
        pg("pg_ctl", "-D", str(layout.data_dir(new)), "-w", "-t", "60", "promote")
    wait_for(f"{new} accepting writes", lambda: not in_recovery(layout, new))
    # Writes must not wait for a standby that is not there (step 3 of the runbook).
    query(layout, new, "ALTER SYSTEM SET synchronous_standby_names = ''")
    query(layout, new, "SELECT pg_reload_conf()")
    layout.primary = new
    layout.save()
    return old, new


def rejoin(layout: Layout, name: str) -> str:
    """Make server `name` (an old primary, stopped or dead) a standby of the current primary;
    how: "pg_rewind" or "pg_basebackup"."""
    if name == layout.primary:
        raise ClusterError(f"{name} is the primary; nothing to rejoin")
    data = layout.data_dir(name)
    if postmaster_pid(layout, name) is not None and answers(layout, name) and not in_recovery(layout, name):
        raise ClusterError(f"{name} runs as a primary beside {layout.primary}: stop it first")
    if postmaster_pid(layout, name) is not None:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
    wait_until_gone(data)
    # pg_rewind compares timelines from the control file, which a promoted server updates at
    # its first checkpoint.
    query(layout, layout.primary, "CHECKPOINT")
    how = "pg_rewind"
    try:
        pg(
            "pg_rewind",
            *("--target-pgdata", str(data), "--source-server", layout.dsn(layout.primary)),
            "--write-recovery-conf",
            timeout=600,
        )
    except ClusterError as error:
        log(f"pg_rewind failed ({error}); cloning {name} afresh with pg_basebackup")
        how = "pg_basebackup"
        clone_standby(layout, name)
    give_to_system_user(data)
    start_server(layout, name)
    require_synchronous_standby(layout)
    return how


def failover(layout: Layout, *, rejoin_old: bool = True) -> FailoverReport:
    started = time.monotonic()
    old, new = promote(layout)
    promoted = time.monotonic() - started
    log(f"{new} promoted in {promoted:.2f} s: it takes writes (not yet synchronously replicated)")
    if not rejoin_old:
        return FailoverReport(old, new, promoted, None, None)
    how = rejoin(layout, old)
    rejoined = time.monotonic() - started
    log(f"{old} rejoined by {how} as the synchronous standby of {new} ({rejoined:.2f} s in all)")
    return FailoverReport(old, new, promoted, rejoined, how)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the cluster's folder (cluster.json)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--no-rejoin", action="store_true", help="promote the standby only")
    what.add_argument("--rejoin-only", action="store_true", help="make the old primary the standby of the new one")
    args = parser.parse_args(argv)
    if not shutil.which("runuser") and os.geteuid() == 0:
        log("runuser is missing (util-linux)")
        return 1
    try:
        layout = Layout.load(args.root.resolve())
        if args.rejoin_only:
            how = rejoin(layout, layout.standby)
            log(f"{layout.standby} rejoined by {how} as the synchronous standby of {layout.primary}")
        else:
            failover(layout, rejoin_old=not args.no_rejoin)
    except ClusterError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
