"""Open files for the connections (app/runtime/server.py): the supervisor raises its soft
RLIMIT_NOFILE towards the hard one when MAX_CONNECTIONS_PER_WORKER (plus a margin for
pools, logs, ...) does not fit, and serves fewer connections when even the hard limit is
too low. The decision alone, then the supervisor's own call in a child process (setting
a process's limits is for good)."""

import resource
import subprocess
import sys
import textwrap

import pytest

from app.core.config import get_settings
from app.runtime.server import DescriptorPlan, connections_that_fit, descriptors_besides_connections
from bench.live_server import PROJECT_ROOT

INFINITY = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "wanted", "margin", "plan"),
    [
        # Enough already: left alone (and never lowered).
        (20_000, 20_000, 4096, 148, DescriptorPlan(20_000, 4096)),
        (4244, 4244, 4096, 148, DescriptorPlan(4244, 4096)),
        (INFINITY, INFINITY, 4096, 148, DescriptorPlan(INFINITY, 4096)),
        # A soft limit of 1024 (a common default) under a high hard one: raised as far as needed.
        (1024, 1_048_576, 4096, 148, DescriptorPlan(4244, 4096)),
        (1024, INFINITY, 4096, 148, DescriptorPlan(4244, 4096)),
        (1024, 20_000, 1000, 148, DescriptorPlan(1148, 1000)),
        # The hard limit too low: raised to it, and the connections are what it leaves.
        (1024, 4096, 4096, 148, DescriptorPlan(4096, 3948)),
        (1024, 1024, 4096, 148, DescriptorPlan(1024, 876)),
        # Hardly any files at all: still one connection (the warning says the rest).
        (64, 100, 4096, 148, DescriptorPlan(100, 1)),
    ],
)
def test_connections_that_fit_under_the_open_file_limit(soft, hard, wanted, margin, plan):
    assert connections_that_fit(soft, hard, wanted, margin=margin) == plan


def test_the_margin_covers_both_database_pools():
    settings = get_settings()
    pools = settings.db_pool_size + settings.db_max_overflow + settings.db_read_pool_size
    assert descriptors_besides_connections() > pools + settings.db_read_max_overflow


def test_the_supervisor_raises_its_soft_limit_and_warns_when_the_hard_one_is_too_low():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != INFINITY and hard < 1024:
        pytest.skip("needs a hard open-file limit of at least 1024 to lower it to")
    child = textwrap.dedent(
        """
        import resource
        from app.runtime.server import fit_open_file_limit

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))
        print(fit_open_file_limit(500, margin=148), *resource.getrlimit(resource.RLIMIT_NOFILE))
        print(fit_open_file_limit(4096, margin=148), *resource.getrlimit(resource.RLIMIT_NOFILE))
        """
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["500 648 1024", "876 1024 1024"]
    log = done.stderr.splitlines()
    assert log[0] == "serve: raised the open-file limit (RLIMIT_NOFILE) from 256 to 648"
    assert log[1] == "serve: raised the open-file limit (RLIMIT_NOFILE) from 648 to 1024"
    assert log[2].startswith("serve: warning: the open-file limit (1024, hard 1024) leaves room for 876 connections")
    assert len(log) == 3
