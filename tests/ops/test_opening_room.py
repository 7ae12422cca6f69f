"""Registration day with the waiting room on (issue 17): the benchmark scenario run tiny.

100 students in a 10 s window over 25 courses: each takes a place, waits to be
admitted (Retry-After), then registers with its admission token; no pgbench replay.
"""

import json
import uuid

import pytest

from bench.opening_report import growth_table, opening_figures
from tests.support.opening import ISSUE_FIELDS, run_tiny_opening


@pytest.mark.live_server
@pytest.mark.slow
def test_a_tiny_opening_with_the_room_on_runs_clean_and_reports_its_figures(embedded_postgres, settings, tmp_path):
    result = run_tiny_opening(
        embedded_postgres,
        settings,
        tmp_path,
        replay=False,
        label="opening-room",
        database=f"course_reg_opening_room_{uuid.uuid4().hex[:8]}",
        room=True,
    )

    assert result.keys() >= ISSUE_FIELDS | {"p99_place_ms", "drain_s", "inversions_share_by_door"}
    assert result["label"] == "opening-room"
    main = result["main"]
    assert main["errors_5xx"] == 0 and main["connection_errors"] == 0 and main["unexpected"] == {}
    assert main["violations"] == 0 and main["integrity"]["ok"]
    assert main["unfinished_students"] == 0
    assert main["wishes"] == 500
    assert main["registrations"] == main["enrolled"] + main["reserved"] + main["full"] >= 500
    # Every student took a place first, and was answered.
    assert main["latency"]["place"]["until_answered"]["count"] == 100
    assert 0 < result["p99_place_ms"] == main["p99_place_ms"]
    assert result["drain_s"] >= 5
    assert 0 <= result["inversions_share_by_door"] <= 1
    assert sum(main["timeline"]["arrivals_per_s"]) == 100

    results = {"opening_room": json.loads(json.dumps(result)), "started": "test"}
    rows = opening_figures(results)
    assert all(row["figure"].startswith("Opening, room on") for row in rows)
    assert any("POST /queue" in row["figure"] for row in rows)
    assert any("100" in line for line in growth_table(results))
    # `bench --reference`: the same figures again for the other checkout, named as such.
    both = {**results, "opening_room_reference": results["opening_room"]}
    names = [row["figure"] for row in opening_figures(both)]
    assert len(names) == 2 * len(rows)
    assert sum(name.startswith("Opening, room on (reference)") for name in names) == len(rows)
    # `--opening-repeat 2`: every run, in order: this checkout's before the reference's, run by run.
    repeated = {**both, "opening_room_reference_2": result, "opening_room_2": result}
    names = [row["figure"] for row in opening_figures(repeated)]
    assert [name.split(":")[0] for name in names if "courses (Zipf" in name] == [
        "Opening, room on",
        "Opening, room on (reference)",
        "Opening, room on, run 2",
        "Opening, room on (reference), run 2",
    ]
