"""Real server processes, served the way `make run` serves (bench/live_server.py)."""

import json
import os
from collections import Counter
from pathlib import Path

from bench.live_server import LiveServer
from tests.support.environment import TEST_ENV


def start_server(database_url: str, *, workers: int = 2, extra_env: dict[str, str] | None = None) -> LiveServer:
    """The API served by app/runtime/server.py against database_url, ready: a supervisor
    that replaces dead workers and never health-pings busy ones, and workers that each
    listen on the port with SO_REUSEPORT. Stop it with `server.stop()`."""
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, **(extra_env or {})}
    server = LiveServer(workers=workers, env=env, log_level="warning", stop_timeout=15)
    server.start()
    try:
        return server.wait_ready()
    except BaseException:
        server.stop()
        raise


def answered_by_worker(metrics_dir: Path, route: str) -> Counter[int]:
    """Requests each worker process has answered on a route, from the Prometheus
    files every worker writes under its own pid (PROMETHEUS_MULTIPROC_DIR)."""
    from prometheus_client.mmap_dict import MmapedDict

    answered: Counter[int] = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "http_requests_total" and labels.get("route") == route:
                answered[pid] += value
    return answered
