"""What the opening-minute benchmark tests share (tests/ops/test_opening*.py)."""

import uuid
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.runtime.embedded_postgres import EmbeddedPostgres
from bench import opening
from bench.suite import PGBENCH

# The fields issue 14 asks of results.json's `opening` object.
ISSUE_FIELDS = {
    "students",
    "courses",
    "registrations",
    "offered_per_s",
    "achieved_per_s",
    "p99_register_ms",
    "p99_my_courses_ms",
    "errors_5xx",
    "violations",
    "inversions_share",
    "ceiling_tps",
    "ratio",
    "max_students_within_target",
}


def postmaster_pid(server: EmbeddedPostgres) -> int:
    """The embedded server's postmaster (for CPU sampling): the first line of its postmaster.pid."""
    return int((server.data_dir / "postmaster.pid").read_text().split()[0])


def run_tiny_opening(server: EmbeddedPostgres, settings: Settings, workdir: Path, **options: Any) -> dict[str, Any]:
    """The opening minute, tiny (100 students, 25 courses, a 10 s window, no growth runs),
    on its own database of the embedded server; `options` override OpeningOptions."""
    defaults: dict[str, Any] = {
        "students": 100,
        "courses": 25,
        "duration": 10.0,
        "growth": (),
        "bisect_steps": 0,
        "warm_up_students": 0,
        "database": f"course_reg_opening_{uuid.uuid4().hex[:8]}",
    }
    return opening.run_scenario(
        server,
        settings,
        opening.OpeningOptions(**{**defaults, **options}),
        workdir=workdir,
        postmaster=postmaster_pid(server),
        workers=2,
        launcher="serve",
        pgbench=PGBENCH,
    )
