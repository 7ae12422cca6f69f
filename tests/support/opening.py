"""What the opening-minute benchmark tests share (tests/ops/test_opening*.py)."""

from app.runtime.embedded_postgres import EmbeddedPostgres

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
