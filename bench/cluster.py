"""Registrations/s and catalogue reads/s through HAProxy with 1, 2 and 3 API nodes.

    .venv/bin/python -m bench.cluster --nodes 1 2 3 --workers 1 --seconds 6

For each node count, a fresh local cluster (scripts/cluster.py: primary, synchronous
standby, N nodes, HAProxy) in a temporary folder on free ports, the bench's data
(bench/suite.py's seed), then wrk (bench/load.py) through HAProxy: registrations spread
over 100 courses, and the catalogue of one semester (CATALOGUE_CACHE_SECONDS as in
production, 1 s). Prints one line per run and writes reports/cluster-<time>.json.

Everything shares one machine: with 2 cores, more nodes add processes, not cores; what
the figures can show is what the extra hop (HAProxy) and the synchronous standby cost,
and that adding nodes does not lose anything; not how far the API scales out
(docs/performance.md, "Several nodes").
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.config import Settings
from bench.load import run_wrk
from bench.suite import CLIENTS, STUDENTS, seed
from scripts import cluster

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def measure(nodes: int, workers: int, seconds: int, workdir: Path) -> dict[str, Any]:
    root = workdir / f"cluster-{nodes}"
    layout = cluster.Layout.with_free_ports(root, nodes=nodes, workers=workers)
    settings = Settings(_env_file=None, database_url=layout.database_url(), bcrypt_rounds=4)
    env = {"SECRET_KEY": settings.secret_key, "BCRYPT_ROUNDS": "4", "LOG_LEVEL": "WARNING", "REQUEST_LOG": "false"}
    cluster.up(layout, extra_env=env, seed=False)
    try:
        fixture = seed(settings.database_url, settings)
        groups = {"haproxy": layout.haproxy_pid or 0, **{f"api{i + 1}": pid for i, pid in enumerate(layout.api_pids)}}
        groups["postgres"] = cluster.postmaster_pid(layout, layout.primary) or 0
        groups["standby"] = cluster.postmaster_pid(layout, layout.standby) or 0

        def wrk(name: str, plan: Any, run_seconds: float) -> Any:
            return run_wrk(
                name,
                layout.base_url,
                plan,
                clients=CLIENTS,
                max_seconds=run_seconds,
                workdir=workdir,
                cpu_groups=groups,
            )

        spread = {"kind": "spread", "tokens": fixture.tokens, "per_student_block": STUDENTS // CLIENTS}
        catalogue = {"kind": "get", "path": f"/semesters/{fixture.catalogue_semester_id}/courses"}
        wrk(f"warmup-{nodes}", {**spread, "courses": fixture.warmup_courses}, 2)
        wrk(f"warmup-read-{nodes}", catalogue, 1)
        registrations = wrk(f"register-{nodes}", {**spread, "courses": fixture.spread_courses}, seconds).summary({200})
        reads = wrk(f"catalogue-{nodes}", catalogue, seconds).summary({200})
    finally:
        cluster.down(layout, purge=True)
    return {"nodes": nodes, "workers_per_node": workers, "registrations": registrations, "catalogue": reads}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=1, help="worker processes per node")
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        workdir = Path(folder)
        os.chmod(workdir, 0o755)  # the PostgreSQL servers' user reaches its folders through it
        for nodes in args.nodes:
            result = measure(nodes, args.workers, args.seconds, workdir)
            results.append(result)
            reg, cat = result["registrations"], result["catalogue"]
            print(
                f"{nodes} node(s) x {args.workers} worker(s): {reg['rate_per_s']:,.0f} registrations/s "
                f"(p99 {reg['p99_ms']} ms, {reg['statuses']}), {cat['rate_per_s']:,.0f} catalogue reads/s "
                f"(p99 {cat['p99_ms']} ms); cores: {reg['cpu_cores']}",
                flush=True,
            )
    reports = PROJECT_ROOT / "reports"
    reports.mkdir(exist_ok=True)
    path = reports / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
