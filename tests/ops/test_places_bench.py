"""The waiting room's door as a benchmark (bench/places.py), run tiny: low rates for a
second each, every place answered, the report's row, and a reference checkout beside."""

import uuid

import pytest

from bench.places import PROJECT_ROOT, run_scenario
from bench.report import evaluate
from tests.support.opening import postmaster_pid


def door(embedded_postgres, settings, tmp_path, **options):
    """The scenario on its own database, a second per rate."""
    return run_scenario(
        embedded_postgres,
        settings,
        workdir=tmp_path,
        postmaster=postmaster_pid(embedded_postgres),
        seconds=1.0,
        database=f"course_reg_places_{uuid.uuid4().hex[:8]}",
        **options,
    )


@pytest.mark.live_server
@pytest.mark.slow
def test_the_places_bench_answers_every_place_and_reports_the_rate_within_target(embedded_postgres, settings, tmp_path):
    result = door(embedded_postgres, settings, tmp_path, workers=2, rates=(20, 60))

    assert [run["rate_per_s"] for run in result["rates"]] == [20, 60]
    for run in result["rates"]:
        assert run["answered_200"] == run["places"] == run["rate_per_s"] and run["other_answers"] == 0
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["cpu_ms_per_place"]["api"] > 0 and run["cpu_ms_per_place"]["load_generator"] > 0
        assert run["within_target"] == (run["p99_ms"] <= 100)
    assert result["max_rate_within_target"] in (0, 20, 60)
    rows = [row for row in evaluate({"places": result}) if row["figure"].startswith("Waiting room door")]
    assert len(rows) == 1 and rows[0]["met"] is False  # far from the opening's 1,100 a second


@pytest.mark.live_server
@pytest.mark.slow
def test_with_a_reference_checkout_each_rate_runs_against_both(embedded_postgres, settings, tmp_path):
    # The reference is this checkout itself: the mechanics, not a comparison.
    result = door(embedded_postgres, settings, tmp_path, workers=1, rates=(20,), reference=PROJECT_ROOT)

    reference = result["reference"]
    assert reference["checkout"] == str(PROJECT_ROOT)
    for runs in (result["rates"], reference["rates"]):
        assert [run["rate_per_s"] for run in runs] == [20]
        assert runs[0]["answered_200"] == 20 and runs[0]["cpu_ms_per_place"]["api"] > 0
    assert (tmp_path / "places" / "api-this.log").exists() and (tmp_path / "places" / "api-reference.log").exists()
